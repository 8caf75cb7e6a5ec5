import Foundation
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// The download endpoint's access log on disk, `HOME/exports/access.jsonl` (one JSON object a
/// line, with at least `time` in ISO 8601), and the lock its writers share,
/// `HOME/exports/access.lock` (`flock`, exclusive, held for one append or one pruning).
///
/// Appending (tresor serve) and pruning (tresor retention apply) may run at once: pruning
/// replaces the file by a rename, so an appender that still held the old file would write into
/// an unlinked inode and lose the line. Under the lock an appender checks that its descriptor is
/// still the file at the path and reopens it when not.
public enum AccessLogFile {
    /// What pruning did, or (dry run) would do.
    public struct PruneResult: Codable, Sendable, Equatable {
        /// Entries older than the retention removed (or, dry, to be removed).
        public var deleted = 0
        /// Entries kept.
        public var kept = 0
        /// Lines without a readable `time`, kept (never dropped unread) and reported.
        public var unreadable = 0

        public init() {}
    }

    public static func lockURL(_ home: Home) -> URL { home.exports.appendingPathComponent("access.lock") }

    /// Runs `body` holding the access log's lock.
    public static func withLock<T>(_ home: Home, _ body: () throws -> T) throws -> T {
        let path = lockURL(home).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError.failed("cannot open the access log's lock \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw CoreError.failed("cannot lock \(path): \(String(cString: strerror(errno)))") }
        }
        // Closing the descriptor (above, deferred) releases the lock.
        return try body()
    }

    /// Removes the entries whose `time` is before `cutoff`, atomically: the kept lines go to a
    /// temporary file that is synced and renamed over the log (then the folder is synced), so
    /// a crash leaves either the old log or the new one, never half of one. Nothing is rewritten
    /// when nothing is to be removed, or in a dry run.
    public static func prune(_ home: Home, olderThan cutoff: Date, dryRun: Bool = false) throws -> PruneResult {
        let url = home.accessLog
        // No log: the server never answered a request; nothing to keep or drop.
        guard FileManager.default.fileExists(atPath: url.path) else { return PruneResult() }
        return try withLock(home) {
            let data = try Data(contentsOf: url)
            var result = PruneResult()
            var kept = Data()
            kept.reserveCapacity(data.count)
            let decoder = JSONDecoder()
            for line in data.split(separator: 0x0a) {
                guard let stamp = try? decoder.decode(Stamp.self, from: line), let time = try? Date(stamp.time, strategy: .iso8601) else {
                    result.unreadable += 1
                    kept.append(contentsOf: line)
                    kept.append(0x0a)
                    continue
                }
                if time < cutoff {
                    result.deleted += 1
                } else {
                    result.kept += 1
                    kept.append(contentsOf: line)
                    kept.append(0x0a)
                }
            }
            if result.deleted > 0, !dryRun { try replace(url, with: kept) }
            return result
        }
    }

    private struct Stamp: Decodable { let time: String }

    private static func replace(_ url: URL, with data: Data) throws {
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).pruning")
        func fail(_ what: String) -> CoreError {
            CoreError.failed("cannot \(what) while pruning the access log \(url.path): \(String(cString: strerror(errno)))")
        }
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail("create \(tmp.lastPathComponent)") }
        var ok = data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        let saved = errno
        close(fd)
        guard ok else { errno = saved; unlink(tmp.path); throw fail("write \(tmp.lastPathComponent)") }
        guard rename(tmp.path, url.path) == 0 else { throw fail("rename \(tmp.lastPathComponent)") }
        let dir = open(url.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw fail("open its folder") }
        defer { close(dir) }
        guard fsync(dir) == 0 else { throw fail("sync its folder") }
    }
}
