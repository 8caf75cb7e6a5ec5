import Foundation
import Synchronization
import TresorCore
import TresorEngine

#if canImport(Glibc)
import Glibc
#endif

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

/// The download endpoint's access log (``AccessLogFile``): JSON lines appended with one `write`
/// each to a file opened with `O_APPEND`, under the log's lock, so concurrent requests never
/// interleave within a line and a pruning (`tresor retention apply`, which replaces the file)
/// never makes a line vanish into the replaced file.
final class AccessLog: Sendable {
    let home: Home
    var url: URL { home.accessLog }
    private let fd: Mutex<Int32>
    private static let timeFormat: Date.ISO8601FormatStyle = .iso8601

    init(home: Home) throws {
        self.home = home
        self.fd = Mutex(try Self.open(home.accessLog))
    }

    deinit { fd.withLock { _ = close($0) } }

    private static func open(_ url: URL) throws -> Int32 {
        let fd = Glibc.open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError.failed("cannot open the access log \(url.path): \(String(cString: strerror(errno)))") }
        return fd
    }

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
        do {
            try fd.withLock { fd in
                try AccessLogFile.withLock(home) {
                    // Pruned meanwhile (the path names another file now): append to the new one.
                    var open = stat(), current = stat()
                    if fstat(fd, &open) != 0 || stat(url.path, &current) != 0 || open.st_ino != current.st_ino || open.st_dev != current.st_dev {
                        let fresh = try Self.open(url)
                        close(fd)
                        fd = fresh
                    }
                    let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if written != line.count {
                        throw CoreError.failed("cannot append to the access log \(url.path): \(String(cString: strerror(errno)))")
                    }
                }
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        }
    }

    /// The lines whose `tenant` is `tenant`, in order.
    func lines(of tenant: TenantID) throws -> [Data] {
        let data = try Data(contentsOf: url)
        let decoder = JSONDecoder()
        return data.split(separator: 0x0a).filter { line in
            // A line that does not parse names no tenant: it is nobody's to download.
            (try? decoder.decode(AccessEntry.self, from: line))?.tenant == tenant.rawValue
        }.map { Data($0) + Data([0x0a]) }
    }
}
