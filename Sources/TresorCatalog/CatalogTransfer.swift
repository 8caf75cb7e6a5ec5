import Foundation

/// `tresor catalog migrate`: copies an embedded SQLite catalog into an empty PostgreSQL catalog,
/// table by table, whatever tables the schema has (those of every migration), and checks the
/// row counts on both sides before anything else changes.
///
/// The SQLite catalog is held under its write lock for the whole copy and for `commit` (which
/// switches the configuration), so no run a concurrent process records can fall between the
/// copy and the switch: such a process waits, then fails loudly on the busy catalog.
public enum CatalogTransfer {
    /// Rows copied, by table.
    public typealias Counts = [String: Int]

    /// Copies every row of the SQLite catalog at `sqlitePath` into the PostgreSQL catalog at
    /// `dsn` (migrated to the latest schema first), verifies the counts, then runs `commit`
    /// while the SQLite catalog is still locked. Throws `.invalid` (exit 2) if the target holds
    /// any row already, and fails without committing anything on PostgreSQL if a count differs.
    public static func copy(sqlitePath: String, toPostgres dsn: String, commit: (Counts) throws -> Void) throws -> Counts {
        guard FileManager.default.fileExists(atPath: sqlitePath) else {
            throw CatalogError(.notFound, "there is no SQLite catalog at \(sqlitePath)", hint: "check [catalog] path in tresor.toml")
        }
        let source = try SQLiteDatabase(path: sqlitePath)
        try source.exec("PRAGMA busy_timeout = 5000")
        try SQLCatalog.migrate(source)  // an older catalog is brought to the schema the target has
        let target = try PostgresConnection(dsn: dsn, applicationName: "tresor-catalog-migrate")
        try SQLCatalog.migrate(target, to: PostgresCatalog.migrations, serialize: "SELECT pg_advisory_xact_lock(7415726431)")

        return try source.transaction(write: true) {
            let tables = try orderedTables(source)
            for table in tables {
                let rows = try count(table, in: target)
                guard rows == 0 else {
                    throw CatalogError(
                        .invalid, "the target catalog is not empty: table \(table) holds \(rows) rows",
                        hint: "migrate into a new, empty database (CREATE DATABASE tresor_catalog)")
                }
            }
            var counts: Counts = [:]
            try target.transaction(write: true) {
                for table in tables {
                    counts[table] = try copyTable(table, from: source, to: target)
                }
                for table in tables {
                    let copied = try count(table, in: target)
                    guard copied == counts[table] else {
                        throw CatalogError(.postgres, "table \(table): \(counts[table] ?? 0) rows read, \(copied) in the target; nothing was committed")
                    }
                }
                try resetSequences(tables, in: target)
            }
            try commit(counts)
            return counts
        }
    }

    private static func count(_ table: String, in db: any CatalogConnection) throws -> Int {
        Int(try db.query("SELECT COUNT(*) FROM \(table)") { $0.int64(0) }.first ?? 0)
    }

    /// The catalog's tables (not SQLite's own, not `schema_version`, which the target has from
    /// its migrations), each after the tables its foreign keys point to.
    private static func orderedTables(_ db: SQLiteDatabase) throws -> [String] {
        let names = try db.query(
            """
            SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_version'
            ORDER BY name
            """
        ) { $0.text(0) }
        var parents: [String: Set<String>] = [:]
        for name in names {
            parents[name] = Set(try db.query("SELECT \"table\" FROM pragma_foreign_key_list(?)", [.text(name)]) { $0.text(0) })
                .subtracting([name])
        }
        var ordered: [String] = []
        while ordered.count < names.count {
            let ready = names.filter { !ordered.contains($0) && parents[$0, default: []].isSubset(of: ordered) }
            guard !ready.isEmpty else {
                throw CatalogError(.corrupt, "the catalog's foreign keys form a cycle among \(names.filter { !ordered.contains($0) })")
            }
            ordered += ready
        }
        return ordered
    }

    private static func copyTable(_ table: String, from source: SQLiteDatabase, to target: any CatalogConnection) throws -> Int {
        let columns = try source.query("SELECT name FROM pragma_table_info(?) ORDER BY cid", [.text(table)]) { $0.text(0) }
        let list = columns.map { "\"\($0)\"" }.joined(separator: ", ")
        // Every catalog value is an integer, text or NULL; a BLOB (no catalog column holds one)
        // would not survive the text transfer, so it stops the copy instead.
        let blobs =
            try source.query("SELECT COUNT(*) FROM \(table) WHERE " + columns.map { "typeof(\"\($0)\") = 'blob'" }.joined(separator: " OR ")) {
                $0.int64(0)
            }.first ?? 0
        guard blobs == 0 else {
            throw CatalogError(.invalid, "table \(table) holds \(blobs) rows with binary values the copy cannot carry")
        }
        let insert = "INSERT INTO \(table) (\(list)) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
        let rows = try source.query("SELECT \(list) FROM \(table)") { row in
            (0..<Int32(columns.count)).map { SQLiteValue(row.optionalText($0)) }
        }
        for values in rows { try target.execute(insert, values) }
        return rows.count
    }

    /// Copied ids were inserted explicitly: the next id each serial column hands out must follow them.
    private static func resetSequences(_ tables: [String], in db: any CatalogConnection) throws {
        for table in tables {
            let serials = try db.query(
                """
                SELECT column_name FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = ? AND column_default LIKE 'nextval(%'
                """, [.text(table)]
            ) { $0.text(0) }
            for column in serials {
                _ = try db.query(
                    "SELECT setval(pg_get_serial_sequence(?, ?), COALESCE((SELECT MAX(\"\(column)\") FROM \(table)), 0) + 1, false)",
                    [.text(table), .text(column)]
                ) { _ in () }
            }
        }
    }
}
