import Foundation
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// One restore's own spool: `HOME/spool/pg/<tenant>/r-<id>/`, filled by one long-lived prefetcher
/// (``WALSpool/follow(after:depth:threads:pgdata:idle:)``) and emptied by the restored server's
/// `restore_command`, whose first step is a shell `mv` of the requested segment out of it
/// (``WALSpool/fastRestoreCommand(runDirectory:slowCommand:)``): a spooled segment then costs
/// a shell and a rename instead of starting `tresor`.
///
/// A run directory is named in the restored server's settings and written only by that restore's
/// prefetchers, from the archive of the tenant's current cluster, each segment authenticated and
/// placed whole (``WALSpool/place(_:owner:)``): a file left in the shared spool or in another
/// restore's directory (another cluster's segment of the same name, say) is never delivered.
extension WALSpool {
    /// Where a restore's run directory `run` lives in the tenant spool `spool`.
    public static func runDirectory(_ spool: String, run: String) -> String { spool + "/" + run }

    /// A new run directory name, `r-` and 16 hex digits.
    public static func newRunName() -> String {
        "r-" + String(UInt64.random(in: 0...UInt64.max), radix: 16).leftPadded(to: 16)
    }

    /// Whether `run` is a name ``newRunName()`` makes (never a path that leaves the spool).
    public static func isRunName(_ run: String) -> Bool {
        let hex = run.utf8.dropFirst(2)
        return run.hasPrefix("r-") && hex.count == 16 && hex.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The file in a run directory that names the last segment `wal-fetch` delivered itself (the
    /// shell did not find it spooled): the prefetcher moves its window past it.
    static let askedFile = ".asked"

    /// Records that segment `name` was delivered without the spool. A marker that cannot be
    /// written costs speed only (the prefetcher then keeps its window where it was); the caller
    /// reports it.
    public static func recordDelivered(_ name: WALName, runDirectory: String) throws {
        guard name.kind == .segment else { return }
        try writeFileAtomically(Array(name.description.utf8), to: runDirectory + "/" + askedFile, durable: false)
    }

    /// `restore_command` for a restore with run directory `runDirectory`: a segment (a 24-letter
    /// name; history files always go to the archive) that is spooled is renamed into place by
    /// the shell (`mv`, which copies when the spool and `pg_wal` are on different filesystems);
    /// anything else, and any failure of that step, runs `slowCommand` (`tresor pg wal-fetch …`),
    /// with every guarantee of ``WALSpool/deliver(_:to:)``. `runDirectory` is written for the
    /// shell and for postgresql.conf's `%` escapes.
    public static func fastRestoreCommand(runDirectory: String, slowCommand: String) -> String {
        let spooled = shellQuoted((runDirectory + "/").replacingOccurrences(of: "%", with: "%%")) + "%f"
        return "case %f in ????????????????????????) [ -f \(spooled) ] && mv -f \(spooled) %p && exit 0;; esac; exec \(slowCommand)"
    }

    /// Removes the run directories in the tenant spool `spool` that no prefetcher holds and that
    /// were not touched for `olderThan` seconds (restores that ended or were abandoned). What is
    /// removed is a copy of archived segments: nothing is lost.
    public static func removeAbandonedRuns(in spool: String, olderThan: Double, except keep: String) {
        // An unreadable spool leaves old runs in place: they are never read by another restore.
        for run in (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] where isRunName(run) && run != keep {
            let dir = runDirectory(spool, run: run)
            var st = stat()
            guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR,
                Double(st.st_mtim.tv_sec) < Date().timeIntervalSince1970 - olderThan
            else { continue }
            let lock = open(dir + "/.prefetch.lock", O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            if lock >= 0 {
                defer { close(lock) }
                guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { continue }
                emptyAndRemove(dir)
            } else {
                emptyAndRemove(dir)
            }
        }
    }

    /// Removes a run directory's files and the directory. Best effort: a file left behind is an
    /// authenticated copy of an archived segment in a directory no other restore reads.
    public static func emptyAndRemove(_ dir: String) {
        for file in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] { unlink(dir + "/" + file) }
        rmdir(dir)
    }

    /// What a restore's prefetcher does (`tresor pg wal-prefetch T NAME --spool-run R --follow`): keeps
    /// the `depth` segments after the last one the server took in this spool directory, fetching
    /// on `threads` threads, until the recovery of `pgdata` ends (its `recovery.signal` seen and
    /// then gone: promoted), `pgdata` is removed, or nothing was taken for `idle` seconds once
    /// recovery could start; then it removes the directory. A taken segment is one it placed
    /// that is gone, or one `wal-fetch` recorded (``recordDelivered(_:runDirectory:)``). Returns
    /// at once when another prefetcher holds the directory.
    public func follow(after name: WALName, depth: Int, threads: Int, pgdata: String?, idle: Double) throws {
        guard depth > 0, name.kind == .segment else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let lock = open(directory + "/.prefetch.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw PostgresError(.failed, "cannot open \(directory)/.prefetch.lock: \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { return }
        defer { Self.emptyAndRemove(directory) }

        struct Shared {
            var inflight: Set<WALName> = []
            var placed: Set<WALName> = []
            /// Not fetched: left to wal-fetch, which retries and reports.
            var failed: Set<WALName> = []
        }
        let shared = Locked(Shared())
        let queue = BlockingQueue<WALName>(capacity: depth)
        let owner = spoolOwner()
        let workers = ThreadGroup()
        let spool = self
        workers.start(max(1, min(threads, depth)), name: "wal-follow") { _ in
            while let w = queue.pop() {
                let ok = spool.place(w, owner: owner)
                shared.withLock {
                    $0.inflight.remove(w)
                    if ok { $0.placed.insert(w) } else { $0.failed.insert(w) }
                }
            }
        }
        defer {
            queue.close()
            workers.wait()
        }

        var available = Set(try archive.list().map(\.name))
        var listed = Date()
        var cursor = name
        var lastAsked = ""
        var sawSignal = false
        // Not observable (no search right on a parent of pgdata): idle time counts from the start.
        var blind = pgdata == nil
        var idleSince = Date()
        while true {
            if let pgdata {
                var st = stat()
                if stat(pgdata, &st) != 0 && errno == ENOENT { return }
                if stat(pgdata + "/recovery.signal", &st) == 0 {
                    sawSignal = true
                } else if errno != ENOENT {
                    blind = true
                } else if sawSignal {
                    return
                }
            }
            // What the server took since the last look.
            let (placed, inflight, failed) = shared.withLock { ($0.placed, $0.inflight, $0.failed) }
            var moved = false
            for p in placed where access(directory + "/" + p.description, F_OK) != 0 && errno == ENOENT {
                shared.withLock { _ = $0.placed.remove(p) }
                if p.timeline == cursor.timeline && p.segment > cursor.segment { cursor = p }
                moved = true
            }
            if let text = try? String(contentsOfFile: directory + "/" + Self.askedFile, encoding: .utf8), text != lastAsked {
                // Read whole or not at all (it is written by rename); nil: nothing recorded yet.
                lastAsked = text
                if let asked = WALName(text), asked.kind == .segment,
                    asked.timeline != cursor.timeline || asked.segment > cursor.segment
                {
                    cursor = asked
                }
                moved = true
            }
            if moved { idleSince = Date() }
            // Spooled segments the server will not ask for again: taken by wal-fetch while they
            // were being fetched, or on a timeline it left.
            for p in placed where p.timeline != cursor.timeline || p.segment <= cursor.segment {
                unlink(directory + "/" + p.description)
                shared.withLock { _ = $0.placed.remove(p) }
            }
            var next = cursor.next
            var beyondListing = false
            for _ in 0..<depth {
                if !placed.contains(next) && !inflight.contains(next) && !failed.contains(next) {
                    if available.contains(next) {
                        shared.withLock { _ = $0.inflight.insert(next) }
                        queue.push(next)
                    } else {
                        beyondListing = true
                    }
                }
                next = next.next
            }
            if beyondListing && Date().timeIntervalSince(listed) > 5 {
                // WAL archived since: list again, at most every 5 s. A failed listing keeps the old one.
                if let names = try? archive.list().map(\.name) { available = Set(names) }
                listed = Date()
            }
            // Idle time counts once the server can run: a long restore of the files is not
            // idleness, within reason (a restore that fails stops this process itself).
            let limit = sawSignal || blind ? idle : max(idle, 6 * 3600)
            if inflight.isEmpty && Date().timeIntervalSince(idleSince) > limit { return }
            usleep(10_000)
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
