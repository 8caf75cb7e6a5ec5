import Foundation
import TresorLibpq

/// The catalog's connection to PostgreSQL, over TresorLibpq's ``PGConnection``: it numbers the
/// `?` parameters of the shared statements (`$1`, `$2`, ...) and turns ``PostgresError``s into
/// ``CatalogError``s. Like libpq's own messages, none of its errors repeats the password.
final class PostgresConnection: CatalogConnection {
    private let connection: PGConnection

    /// Connects to `dsn` (key=value or `postgresql://` URL).
    init(dsn: String, applicationName: String) throws {
        do {
            connection = try PGConnection(dsn: dsn, applicationName: applicationName)
            // libpq prints NOTICEs (CREATE TABLE IF NOT EXISTS ... skipping) on stderr; the
            // catalog's only notices are those, and warnings and errors still come through.
            try connection.query("SET client_min_messages = warning")
        } catch let e as PostgresError {
            throw CatalogError(
                .postgres, "cannot open the postgresql catalog: \(e.message)",
                hint: "check the catalog setting in tresor.toml and that the server accepts this host")
        }
    }

    /// `?` placeholders numbered `$1`, `$2`, ... The catalog's statements hold no `?` inside
    /// string literals or identifiers, so every `?` is a parameter.
    static func numbered(_ sql: String) -> String {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var n = 0
        for c in sql {
            if c == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(c)
            }
        }
        return out
    }

    private static func text(_ value: CatalogValue) -> String? {
        switch value {
        case .null: nil
        case .int64(let n): String(n)
        case .text(let t): t
        }
    }

    private func run(_ sql: String, _ values: [CatalogValue]) throws -> (rows: [[String?]], changed: Int) {
        do {
            return try connection.execute(Self.numbered(sql), values.map(Self.text))
        } catch let e as PostgresError {
            throw CatalogError(.postgres, "postgresql catalog: \(e.message)")
        }
    }

    var nowMilliseconds: String { "(extract(epoch FROM clock_timestamp()) * 1000)::bigint" }
    /// PostgreSQL 15 has no way to test text for JSON without an error (`IS JSON` came in 16), so
    /// the member is matched as Tresor's encoder writes it (`"field":"value"`, names without quotes).
    func jsonStringField(_ column: String, _ field: String) -> String {
        "substring(\(column) from '\"\(field)\":\"([^\"]*)\"')"
    }
    var lockRowSkippingLocked: String { " FOR UPDATE SKIP LOCKED" }

    func exec(_ sql: String) throws {
        do {
            try connection.query(sql)
        } catch let e as PostgresError {
            throw CatalogError(.postgres, "postgresql catalog: \(e.message)")
        }
    }

    func execute(_ sql: String, _ values: [CatalogValue]) throws -> Int {
        try run(sql, values).changed
    }

    func query<Row>(_ sql: String, _ values: [CatalogValue], row: (any CatalogRow) throws -> Row) throws -> [Row] {
        try run(sql, values).rows.map { try row(PostgresRow(values: $0)) }
    }

    func transaction<T>(write: Bool, _ body: () throws -> T) throws -> T {
        // READ COMMITTED (the default) for writes: the lease claim relies on FOR UPDATE seeing the
        // newest committed row; REPEATABLE READ gives a read transaction one snapshot, as SQLite's does.
        try exec(write ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            let result = try body()
            try exec("COMMIT")
            return result
        } catch {
            // A failed ROLLBACK means the connection is gone; the error that got us here is the one to report.
            try? exec("ROLLBACK")
            throw error
        }
    }
}

/// One row as libpq's text format gives it.
struct PostgresRow: CatalogRow {
    let values: [String?]

    func optionalText(_ column: Int32) -> String? { values[Int(column)] }
    func text(_ column: Int32) -> String { optionalText(column) ?? "" }
    // The catalog's integer columns are BIGINT, whose text form always parses.
    func optionalInt64(_ column: Int32) -> Int64? { optionalText(column).flatMap { Int64($0) } }
    func int64(_ column: Int32) -> Int64 { optionalInt64(column) ?? 0 }
}
