#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import TresorCore

/// One download attempt, as a line of `HOME/exports/access.jsonl`.
struct AccessEntry: Codable, Sendable {
    /// ISO 8601, UTC.
    var time: String
    /// The client's address and port.
    var address: String
    /// The tenant the request named (empty when the path named none); the link was not
    /// necessarily valid: `status` tells.
    var tenant: String
    var file: String
    /// The link id the request carried (empty when it carried none).
    var link: String
    /// `page`, `file` or `access-log`.
    var route: String
    var status: Int
    /// The `Range` header as sent, when there was one.
    var range: String?
    /// Body bytes actually sent.
    var bytes: Int64
    /// For files: whether every byte promised by Content-Length was sent.
    var complete: Bool
}

/// The download endpoint's access log: JSON lines appended with one `write` each to a file
/// opened with `O_APPEND`, so concurrent requests never interleave within a line. Entries older
/// than the policy's `access_log.retention` are dropped when the server starts (``prune(olderThan:)``).
final class AccessLog: Sendable {
    let url: URL
    private let fd: Mutex<Int32>
    private static let timeFormat: Date.ISO8601FormatStyle = .iso8601

    init(url: URL) throws {
        self.url = url
        let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError.failed("cannot open the access log \(url.path): \(String(cString: strerror(errno)))") }
        self.fd = Mutex(fd)
    }

    deinit { fd.withLock { _ = close($0) } }

    static func timestamp(_ date: Date) -> String { date.formatted(timeFormat) }

    /// Appends one entry. A failed write is reported on stderr (the server keeps answering: a
    /// customer's download is not refused because the disk holding the log is full).
    func append(_ entry: AccessEntry) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(entry) else {
            // Encoding plain strings and integers cannot fail.
            FileHandle.standardError.write(Data("error: cannot encode an access log entry\n".utf8))
            return
        }
        line.append(0x0a)
        let written = fd.withLock { fd in line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
        if written != line.count {
            FileHandle.standardError.write(Data("error: cannot append to the access log \(url.path): \(String(cString: strerror(errno)))\n".utf8))
        }
    }

    /// The lines whose `tenant` is `tenant`, in order.
    func lines(of tenant: String) throws -> [Data] {
        let data = try Data(contentsOf: url)
        let decoder = JSONDecoder()
        return data.split(separator: 0x0a).filter { line in
            (try? decoder.decode(AccessEntry.self, from: line))?.tenant == tenant
        }.map { Data($0) + Data([0x0a]) }
    }

    /// Rewrites the log without the entries older than `cutoff` (through a temporary file and a
    /// rename). Returns how many were dropped. Lines that do not parse are kept, not dropped.
    @discardableResult
    static func prune(_ url: URL, olderThan cutoff: Date) throws -> Int {
        guard FileManager.default.fileExists(atPath: url.path) else { return 0 }
        let data = try Data(contentsOf: url)
        let decoder = JSONDecoder()
        var kept = Data(), dropped = 0
        for line in data.split(separator: 0x0a) {
            if let e = try? decoder.decode(AccessEntry.self, from: line), let t = try? Date(e.time, strategy: timeFormat), t < cutoff {
                dropped += 1
                continue
            }
            kept.append(contentsOf: line)
            kept.append(0x0a)
        }
        if dropped > 0 { try kept.write(to: url, options: .atomic) }
        return dropped
    }
}
