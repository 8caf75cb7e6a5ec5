import Foundation
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// What `restore_command` runs: deliver one WAL file, from the prefetch spool when it is there,
/// else from the archive.
///
/// PostgreSQL calls `restore_command` once per 16 MiB segment, in order, and waits for each, so a
/// restore bound by one store round trip per segment is slow. After delivering a segment the CLI
/// starts a detached prefetcher (``prefetch(after:depth:threads:)``) that fetches the next segments
/// in parallel into the spool (`HOME/spool/pg/<tenant>/`); the following calls find them there.
/// Spool files are written atomically (temporary file, fsync, rename) and verified when fetched
/// (their object's GCM tag and keyed hash), so a spool file is always a whole, authentic segment.
/// Files older than the one requested are removed as replay moves on.
public struct WALSpool: Sendable {
    public let archive: WALArchive
    public let directory: String
    /// Where a segment that could not be prefetched is reported: standard error, which for a
    /// prefetcher started by `wal-fetch` is the server's log, beside `wal-fetch`'s own warnings.
    /// Nothing is lost with it: `wal-fetch` fetches that segment itself when PostgreSQL asks, and
    /// fails the recovery if it cannot.
    public var warn: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    /// `directory` must be writable by the user PostgreSQL runs as.
    public init(archive: WALArchive, directory: String) {
        self.archive = archive
        self.directory = directory
    }

    /// Where a delivered file came from.
    public enum Source: String, Sendable, Codable {
        case spool
        case archive
    }

    /// Writes WAL file `name` to `destination` (a segment only streamed so far as its received
    /// part, see ``WALArchive/fetchForRecovery(_:)``). Throws ``PostgresError/Code/notFound``
    /// when the archive does not have it (restore_command must then exit 1).
    public func deliver(_ name: WALName, to destination: String) throws -> Source {
        if try Self.deliverSpooled(name, directory: directory, to: destination) { return .spool }
        // Not synced: PostgreSQL asks for the file again after a crash, and a 16 MiB fsync per
        // segment is time recovery waits for.
        try writeFileAtomically(try archive.fetchForRecovery(name), to: destination, durable: false)
        return .archive
    }

    /// Moves WAL file `name` from the spool `directory` to `destination` when the prefetcher put
    /// it there; false when it is not there. Needs no archive, key or store: what `restore_command`
    /// does first, so a prefetched segment costs a rename.
    public static func deliverSpooled(_ name: WALName, directory: String, to destination: String) throws -> Bool {
        let spooled = directory + "/" + name.description
        guard access(spooled, F_OK) == 0 else { return false }
        if rename(spooled, destination) == 0 { return true }
        guard let data = FileManager.default.contents(atPath: spooled) else { return false }
        try writeFileAtomically(Array(data), to: destination, durable: false)
        unlink(spooled)
        return true
    }

    /// Whether `restore_command`, having delivered segment `name`, should start a prefetcher: when
    /// one of the next `depth / 2` segments (at least one) is not in the spool. A prefetcher is a
    /// process that opens the store and lists the archive; started after every segment, most
    /// found the spool already full or another prefetcher running and did nothing. Started only
    /// when the spool runs low, each fetches about half the depth. Segments the archive lacks are
    /// never spooled, so near the end of the WAL every call starts one, as before.
    public static func needsPrefetch(after name: WALName, depth: Int, directory: String) -> Bool {
        guard depth > 0, name.kind == .segment else { return false }
        var next = name.next
        for _ in 0..<max(1, depth / 2) {
            if access(directory + "/" + next.description, F_OK) != 0 { return true }
            next = next.next
        }
        return false
    }

    /// Fetches the `depth` segments after `name` that the archive has and the spool lacks, on
    /// `threads` threads, and removes spooled segments before `name`. Meant to run in its own
    /// process; a second prefetcher for the same spool returns at once (an flock on
    /// `.prefetch.lock`), or with `waitForLock` waits for the first to finish.
    public func prefetch(after name: WALName, depth: Int, threads: Int, waitForLock: Bool = false) throws {
        guard depth > 0, name.kind == .segment else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let lock = open(directory + "/.prefetch.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { return }
        defer { close(lock) }
        guard flock(lock, waitForLock ? LOCK_EX : LOCK_EX | LOCK_NB) == 0 else { return }
        for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            if let n = WALName(file), n.kind == .segment, n.timeline == name.timeline, n.segment <= name.segment {
                unlink(directory + "/" + file)
            }
        }
        let available = Set(try archive.list().map(\.name))
        var wanted: [WALName] = []
        var next = name.next
        for _ in 0..<depth {
            if available.contains(next) && access(directory + "/" + next.description, F_OK) != 0 { wanted.append(next) }
            next = next.next
        }
        let queue = BlockingQueue<WALName>(capacity: max(1, wanted.count))
        for w in wanted { queue.push(w) }
        queue.close()
        let spool = self
        let owner = spoolOwner()
        runOnThreads(min(threads, max(1, wanted.count)), name: "wal-prefetch") { _ in
            while let w = queue.pop() {
                // A failed prefetch is reported (``warn``); the segment is fetched directly when asked for.
                _ = spool.place(w, owner: owner)
            }
        }
    }

    /// Spool files become PostgreSQL's files by rename: when an operator runs a prefetcher as
    /// root, they must still belong to the spool's owner (the PostgreSQL user).
    func spoolOwner() -> (uid_t, gid_t)? {
        var dirStat = stat()
        return getuid() == 0 && stat(directory, &dirStat) == 0 ? (dirStat.st_uid, dirStat.st_gid) : nil
    }

    /// Fetches segment `w` (its object authenticated and opened by ``WALArchive/fetch(_:)``) and
    /// puts it in the spool whole: written and synced under a temporary name, then renamed, so
    /// a file with a segment's name is always the complete segment the archive holds. False
    /// when it could not be fetched or written: reported through ``warn``, and the segment is
    /// then fetched when asked for.
    func place(_ w: WALName, owner: (uid_t, gid_t)?) -> Bool {
        let path = directory + "/" + w.description
        let tmp = path + ".spool"
        do {
            try writeFileAtomically(try archive.fetch(w), to: tmp)
            if let (uid, gid) = owner { chown(tmp, uid, gid) }
            guard rename(tmp, path) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(tmp)
                throw PostgresError(.failed, "cannot rename \(tmp) to \(path): \(reason)")
            }
            return true
        } catch {
            warn("warning: cannot prefetch wal file \(w) into \(directory): \(error); wal-fetch fetches it when PostgreSQL asks")
            return false
        }
    }
}
