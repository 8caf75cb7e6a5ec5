import Foundation
import TresorCatalog
import TresorCore
import TresorPostgres

#if canImport(Glibc)
import Glibc
#endif

/// What `tresor catalog migrate` did.
public struct CatalogMigrateResult: Codable, Sendable {
    /// The SQLite file copied from.
    public var from: String
    /// The PostgreSQL catalog copied to, without its password.
    public var to: String
    /// Rows copied (and found again in the target), by table.
    public var tables: [String: Int]
    /// The config file now naming the PostgreSQL catalog.
    public var config: String
}

extension HomeOpener {
    /// `tresor catalog migrate --from sqlite --to postgresql://...`: copies the home's SQLite
    /// catalog into the empty PostgreSQL catalog `dsn`, checks every table's row count, and then
    /// switches the config to `catalog = "<dsn>"` with one atomic rename, all while the SQLite
    /// catalog is write-locked (see ``CatalogTransfer``). The SQLite file is left in place, unused.
    public func migrateCatalog(from: String, to dsn: String) throws -> CatalogMigrateResult {
        guard from == "sqlite" else {
            throw CoreError.usage(
                "cannot migrate from '\(from)': only the embedded catalog can be moved",
                hint: "tresor catalog migrate --from sqlite --to postgresql://USER@HOST/DB")
        }
        guard PostgresCatalog.isDSN(dsn) else {
            throw CoreError.usage("the target must be a postgresql:// URL", hint: "tresor catalog migrate --from sqlite --to postgresql://USER@HOST/DB")
        }
        if let current = config.catalogDSN {
            throw CoreError.usage("this installation's catalog is already on PostgreSQL (\(redactDSN(current)))")
        }
        let configURL = configFile ?? home.configFile
        let sqlitePath = home.path(config.catalogPath).path
        let counts = try CatalogTransfer.copy(sqlitePath: sqlitePath, toPostgres: dsn) { _ in
            let text = try String(contentsOf: configURL, encoding: .utf8)
            try Self.replaceAtomically(configURL, with: Config.text(text, switchedTo: dsn, from: config.catalogPath))
        }
        return CatalogMigrateResult(from: sqlitePath, to: redactDSN(dsn), tables: counts, config: configURL.path)
    }

    /// Writes `text` next to `url`, checks it is a config naming the new catalog, and renames it
    /// over `url` (owner-only, fsynced), so a crash leaves the old or the new config, whole.
    static func replaceAtomically(_ url: URL, with text: String) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).migrate-\(getpid())")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError.failed("cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = write(fd, bytes, bytes.count) == bytes.count && fsync(fd) == 0
        close(fd)
        do {
            guard written else { throw CoreError.failed("cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
            guard try Config.load(from: temporary).catalogDSN != nil else {
                throw CoreError.failed("the rewritten config does not name the new catalog; \(url.path) is unchanged")
            }
            guard rename(temporary.path, url.path) == 0 else {
                throw CoreError.failed("cannot replace \(url.path): \(String(cString: strerror(errno)))")
            }
        } catch {
            unlink(temporary.path)  // our own temporary file; the config itself is untouched
            throw error
        }
        let dir = open(url.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 { fsync(dir); close(dir) }  // the rename is done; fsync only hurries it to disk
    }
}

extension Config {
    /// The config `text` with its `[catalog]` table replaced by a top-level `catalog = "<dsn>"`
    /// (TOML allows only one of them), and a comment saying where the SQLite catalog was.
    static func text(_ text: String, switchedTo dsn: String, from sqlitePath: String) -> String {
        var lines = text.components(separatedBy: "\n")
        func isHeader(_ line: String) -> Bool { line.trimmingCharacters(in: .whitespaces).hasPrefix("[") }
        if let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "[catalog]" }) {
            var end = start + 1
            while end < lines.count, !isHeader(lines[end]) { end += 1 }
            lines.replaceSubrange(
                start..<end,
                with: [
                    "# The SQLite catalog (\(sqlitePath)) was moved to PostgreSQL by tresor catalog migrate (catalog above).", "",
                ])
        }
        let escaped = dsn.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let insertAt = lines.firstIndex(where: isHeader) ?? lines.count
        lines.insert(
            contentsOf: [
                "# The fleet's shared catalog (may hold a password: keep this file owner-only).",
                "catalog = \"\(escaped)\"", "",
            ], at: insertAt)
        return lines.joined(separator: "\n")
    }
}
