import Foundation
import TresorCore
import TresorRepository
import TresorStore

#if canImport(Glibc)
import Glibc
#endif

/// A tenant's WAL archive in a store: what `archive_command` and `restore_command` run.
///
/// It needs only the store, the tenant name and the tenant's ``WALKeys`` (never the master key or
/// the data key), because it runs as the PostgreSQL OS user.
///
/// The duplicate rule (``push(path:name:)``): PostgreSQL may call `archive_command` again for a
/// file it already archived (after a crash before it recorded success). An identical second push
/// succeeds; a different file under an archived name is refused, because accepting it would
/// silently replace WAL a restore depends on, or hide that two clusters archive to one tenant.
public struct WALArchive: Sendable {
    public let store: any Store
    public let layout: RepositoryLayout
    public let keys: WALKeys
    public let compressionLevel: Int
    public let clock: any Clock
    /// Where this archive's WAL objects live: the tenant's WAL prefix for the first cluster it
    /// archived, `<prefix><system id>/` for each cluster accepted later (``WALClusters``).
    public let root: String
    /// The database system whose WAL this archive holds, once known; nil for an archive opened
    /// before any cluster was recorded (or whose WAL files carry no page header).
    public let systemID: UInt64?

    /// `clock` stamps each object's push time (the window's latest point). The archive opened
    /// here is the tenant's first cluster's; ``current()`` and ``bound(to:)`` find the right one.
    public init(store: any Store, tenant: TenantID, keys: WALKeys, compressionLevel: Int, clock: any Clock) {
        self.store = store
        self.layout = RepositoryLayout(tenant: tenant)
        self.keys = keys
        self.compressionLevel = compressionLevel
        self.clock = clock
        self.root = layout.walPrefix
        self.systemID = nil
    }

    init(_ base: WALArchive, cluster: WALClusters.Cluster) {
        store = base.store
        layout = base.layout
        keys = base.keys
        compressionLevel = base.compressionLevel
        clock = base.clock
        root = base.layout.walPrefix + cluster.directory
        systemID = UInt64(cluster.systemID)
    }

    /// What a push did.
    public enum PushResult: String, Sendable, Codable {
        case stored
        /// The same content was archived before; nothing was written.
        case alreadyArchived = "already_archived"
    }

    func key(_ name: WALName) -> String { root + name.timelineHex + "/" + name.description }

    /// The state machine of the duplicate rule: given what the store holds under the name,
    /// decide what a push does.
    enum PushDecision: Equatable {
        case store
        case alreadyArchived
        case refuse
    }

    static func decide(existing: ObjectID?, pushing: ObjectID) -> PushDecision {
        guard let existing else { return .store }
        return existing == pushing ? .alreadyArchived : .refuse
    }

    /// Archives the file at `path` under its file name (or `name`). Returns only after the
    /// object is durably in the store (the store's put is atomic and synced).
    ///
    /// The file is mapped, not read (PostgreSQL does not change a segment while it waits for
    /// `archive_command`).
    public func push(path: String, name: String? = nil) throws -> PushResult {
        let fileName = name ?? (path as NSString).lastPathComponent
        guard let wal = WALName(fileName), wal.kind != .streaming else {
            throw PostgresError(.usage, "'\(fileName)' is not a WAL segment, .partial, .backup or .history file name")
        }
        return try withMappedFile(path) { try push($0, name: wal) }
    }

    /// Archives one WAL file's bytes under `name`, applying the duplicate rule. The object is
    /// created with a conditional put (`ifAbsent`) first, and only a refused put reads what is
    /// stored: the push never asks whether a missing key exists, which a WAL key without an
    /// unconditional `s3:ListBucket` cannot learn (AWS and Ceph RGW answer 403 for a missing
    /// key then). A repeated push therefore seals the segment before it finds the duplicate.
    public func push(_ buf: UnsafeRawBufferPointer, name wal: WALName) throws -> PushResult {
        if let sid = WALRecords.systemIdentifier(buf), sid != systemID {
            return try bound(to: sid).push(buf, name: wal)
        }
        if systemID == nil, wal.kind != .segment, wal.kind != .partial {
            // No page header to tell: the cluster whose WAL the tenant archives now.
            let current = try current()
            if current.root != root { return try current.push(buf, name: wal) }
        }
        let fileName = wal.description
        let k = key(wal)
        let (stored, hash) = try WALObject.withSealed(buf, name: fileName, keys: keys, level: compressionLevel, pushedAt: clock.now()) {
            (try store.put(k, bytes: $0, ifAbsent: true), $1)
        }
        if stored { return .stored }
        // Another push won the race: apply the rule to what it stored.
        return try judge(existing: try storedHash(k, name: fileName), pushing: hash, name: fileName)
    }

    /// The duplicate rule for a name that is (or was, a moment ago) taken.
    private func judge(existing: ObjectID?, pushing: ObjectID, name: String) throws -> PushResult {
        switch Self.decide(existing: existing, pushing: pushing) {
        case .alreadyArchived, .store: return .alreadyArchived
        case .refuse: throw conflict(name)
        }
    }

    /// Stores the first `buf.count` bytes of `segment` as its `.streaming` object, replacing the
    /// previous one atomically. Durable when it returns. A stored object that is longer and
    /// begins with these bytes is kept (returns false): a restarted `pg stream` receives the
    /// segment again from its start, and replacing what an earlier run stored with less would
    /// move the recoverable point back.
    @discardableResult
    public func storeStreamed(_ buf: UnsafeRawBufferPointer, segment: WALName) throws -> Bool {
        if let sid = WALRecords.systemIdentifier(buf), sid != systemID {
            return try bound(to: sid).storeStreamed(buf, segment: segment)
        }
        let name = segment.with(kind: .streaming)
        if try store.head(key(name)) != nil, try header(name).length > UInt64(buf.count) {
            let stored: [UInt8]
            do {
                stored = try fetch(name)
            } catch let e as PostgresError where e.code == .notFound {
                stored = []  // removed since the head (the whole segment was archived): store ours
            }
            if stored.count > buf.count, buf.count == 0 || stored.withUnsafeBytes({ memcmp($0.baseAddress!, buf.baseAddress!, buf.count) == 0 }) {
                return false
            }
        }
        try WALObject.withSealed(buf, name: name.description, keys: keys, level: compressionLevel, pushedAt: clock.now()) { sealed, _ in
            _ = try store.put(key(name), bytes: sealed, ifAbsent: false)
        }
        return true
    }

    /// Removes the `.streaming` object of `segment` (once the whole segment is archived).
    public func removeStreamed(segment: WALName) throws {
        try store.delete(key(segment.with(kind: .streaming)))
    }

    private func conflict(_ name: String) -> PostgresError {
        PostgresError(
            .conflict, "wal file \(name) is already archived for tenant '\(layout.tenant)' with different content; refusing to replace it",
            hint: "two clusters may be archiving to one tenant: check archive_command on each server")
    }

    private func storedHash(_ key: String, name: String) throws -> ObjectID? {
        let header: [UInt8]
        do {
            header = try store.get(key, range: 0..<WALObject.headerSize)
        } catch let e as StoreError where e.code == .notFound {
            return nil
        }
        return try WALObject.header(header, name: name).hash
    }

    /// Reads and opens one WAL file. Throws ``PostgresError/Code/notFound`` when it is not archived.
    public func fetch(_ name: WALName) throws -> [UInt8] {
        let sealed: [UInt8]
        do {
            sealed = try store.get(key(name))
        } catch let e as StoreError where e.code == .notFound {
            throw PostgresError(.notFound, "wal file \(name) is not in the archive of tenant '\(layout.tenant)'")
        }
        return try WALObject.open(sealed, name: name.description, keys: keys)
    }

    /// What `restore_command` gets for segment `name`: the archived segment, or else the part
    /// `pg stream` received of it, padded with zeros to a whole segment as PostgreSQL expects
    /// (replay stops at the first zero record, the end of the streamed WAL).
    public func fetchForRecovery(_ name: WALName) throws -> [UInt8] {
        do {
            return try fetch(name)
        } catch let e as PostgresError where e.code == .notFound && name.kind == .segment {
            var streamed: [UInt8]
            do {
                streamed = try fetch(name.with(kind: .streaming))
            } catch let absent as PostgresError where absent.code == .notFound {
                throw e
            }
            // Any other failure (a streamed part that does not authenticate, the store gone)
            // propagates: treated as absent it would end recovery early.
            guard streamed.count <= Int(WALName.segmentSize) else {
                throw PostgresError(.failed, "the streamed part of wal file \(name) holds \(streamed.count) bytes, more than a segment")
            }
            streamed.append(contentsOf: repeatElement(0, count: Int(WALName.segmentSize) - streamed.count))
            return streamed
        }
    }

    /// Every archived WAL file, sorted by timeline and position.
    public func list() throws -> [(name: WALName, size: Int)] {
        try store.list(prefix: root).compactMap { o in
            // Only `<timeline>/<name>` under this root: the WAL of clusters accepted later
            // lives deeper, under `<system id>/`.
            let parts = o.key.dropFirst(root.count).split(separator: "/")
            guard parts.count == 2, parts[0].count == 8, let n = WALName(String(parts[1])) else { return nil }
            return (n, o.size)
        }.sorted { $0.name < $1.name }
    }

    /// Every stored WAL file with its header, read on `threads` threads: one small ranged read
    /// each, which on an object store is a round trip, and a 30-day window holds thousands.
    public func listWithHeaders(threads: Int = 8) throws -> [ArchivedWAL] {
        let names = try list().map(\.name)
        let next = Locked(0)
        let results = Locked([ArchivedWAL?](repeating: nil, count: names.count))
        let failure = Locked<(any Error)?>(nil)
        let archive = self
        runOnThreads(max(1, min(threads, names.count)), name: "wal-headers") { _ in
            while true {
                let i = next.withLock { n -> Int in
                    defer { n += 1 }
                    return n
                }
                guard i < names.count, failure.withLock({ $0 == nil }) else { return }
                do {
                    let h = try archive.header(names[i])
                    results.withLock { $0[i] = ArchivedWAL(name: names[i], pushedAt: h.pushedAt, length: h.length) }
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return results.withLock { $0.compactMap { $0 } }
    }

    /// A stored WAL file's header: when it was pushed and its length (one small ranged read).
    public func header(_ name: WALName) throws -> WALObject.Header {
        try WALObject.header(try store.get(key(name), range: 0..<WALObject.headerSize), name: name.description)
    }
}

/// Maps the file at `path` read-only for the duration of `body` (MAP_POPULATE: its pages, in the
/// page cache when PostgreSQL just wrote them, are mapped up front rather than faulted in one by
/// one, and never copied). A file truncated while mapped would fault; WAL files waiting for
/// `archive_command` are not. Where the file cannot be mapped (a filesystem without mmap), it is
/// read into a buffer instead.
func withMappedFile<R>(_ path: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw PostgresError(.failed, "cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw PostgresError(.failed, "cannot stat \(path): \(String(cString: strerror(errno)))") }
    let size = Int(st.st_size)
    if size == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
    guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0), base != MAP_FAILED else {
        return try withReadFile(fd, size: size, path: path, body)
    }
    defer { munmap(base, size) }
    return try body(UnsafeRawBufferPointer(start: base, count: size))
}

/// Reads `size` bytes of `fd` into a buffer that lives for the duration of `body`.
func withReadFile<R>(_ fd: Int32, size: Int, path: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
    defer { buffer.deallocate() }
    var off = 0
    while off < size {
        let n = pread(fd, buffer.baseAddress! + off, size - off, off_t(off))
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            throw PostgresError(.failed, "cannot read \(path): \(String(cString: strerror(n < 0 ? errno : EIO)))")
        }
        off += n
    }
    return try body(UnsafeRawBufferPointer(buffer))
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, so a reader (PostgreSQL,
/// or a later fetch) never sees half a file.
/// `durable: false` skips the fsync: for a file whose loss in a crash costs nothing (what
/// `restore_command` hands PostgreSQL, which fetches it again after a crash and syncs what it
/// keeps itself).
public func writeFileAtomically(_ bytes: [UInt8], to path: String, durable: Bool = true) throws {
    let tmp = path + ".tresor-tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw PostgresError(.failed, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
    var off = 0
    let ok: Bool = bytes.withUnsafeBytes { buf in
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            off += n
        }
        return !durable || fsync(fd) == 0
    }
    close(fd)
    guard ok, rename(tmp, path) == 0 else {
        unlink(tmp)
        throw PostgresError(.failed, "cannot write \(path): \(String(cString: strerror(errno)))")
    }
}
