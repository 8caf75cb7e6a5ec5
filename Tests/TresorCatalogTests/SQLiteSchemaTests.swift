import Foundation
import Testing
import TresorCore

@testable import TresorCatalog

/// The file underneath the catalog: schema versions, storage formats, the SQLite wrapper and its
/// errors. These look at the database directly, through a second connection.
@Suite("SQLite schema and wrapper")
struct SQLiteSchemaTests {
    private func versions(at path: String) throws -> [Int64] {
        try SQLiteDatabase(path: path).query("SELECT version FROM schema_version ORDER BY version") { $0.int64(0) }
    }

    @Test func migrationsRunOnceAcrossOpens() throws {
        try withCatalogPath { path in
            try SQLiteCatalog(path: path).addStore(sampleStore("primary"))
            let again = try SQLiteCatalog(path: path)
            _ = try SQLiteCatalog(path: path)

            #expect(SQLiteCatalog.latestSchemaVersion == SQLiteCatalog.migrations.count)
            #expect(try again.schemaVersion() == SQLiteCatalog.latestSchemaVersion)
            #expect(try versions(at: path) == (1...SQLiteCatalog.latestSchemaVersion).map { Int64($0) })
            #expect(try again.stores() == [sampleStore("primary")])
        }
    }

    @Test func aLaterMigrationIsAppliedOnceOnTopOfExistingData() throws {
        try withCatalogPath { path in
            try SQLiteCatalog(path: path).addStore(sampleStore("primary"))
            let next = SQLiteCatalog.migrations + ["ALTER TABLE stores ADD COLUMN note TEXT NOT NULL DEFAULT 'none'"]
            let db = try SQLiteDatabase(path: path)
            try SQLiteCatalog.migrate(db, to: next)
            try SQLiteCatalog.migrate(db, to: next)

            #expect(try versions(at: path) == (1...next.count).map { Int64($0) })
            #expect(try db.query("SELECT name, note FROM stores") { [$0.text(0), $0.text(1)] } == [["primary", "none"]])
        }
    }

    @Test func aFailingMigrationLeavesTheCatalogAsItWas() throws {
        try withCatalogPath { path in
            try SQLiteCatalog(path: path).addStore(sampleStore("primary"))
            let broken = SQLiteCatalog.migrations + ["CREATE TABLE extra (x TEXT); ALTER TABLE no_such_table ADD y TEXT"]
            let db = try SQLiteDatabase(path: path)

            let error = #expect(throws: CatalogError.self) { try SQLiteCatalog.migrate(db, to: broken) }
            #expect(error?.code == .sqlite)
            #expect(error?.message.contains("no such table: no_such_table") == true)
            #expect(try versions(at: path) == (1...SQLiteCatalog.latestSchemaVersion).map { Int64($0) })
            #expect(try db.query("SELECT name FROM sqlite_master WHERE name = 'extra'") { $0.text(0) }.isEmpty)
        }
    }

    @Test func aVersionOneCatalogKeepsItsRunsAndThenRefusesAnUnknownStatus() throws {
        try withCatalogPath { path in
            let db = try SQLiteDatabase(path: path)
            try SQLiteCatalog.migrate(db, to: Array(SQLiteCatalog.migrations.prefix(1)))
            try db.execute(
                """
                INSERT INTO runs (tenant, kind, started_at, ended_at, status, detail)
                VALUES ('acme', 'docs-backup', 1000, 2000, 'problem_found', '{"n":1}')
                """)

            let catalog = try SQLiteCatalog(path: path)
            #expect(try versions(at: path) == (1...SQLiteCatalog.latestSchemaVersion).map { Int64($0) })
            let runs = try catalog.runs(tenant: nil, kind: nil, limit: 10)
            #expect(runs.map(\.kind) == [.documentsBackup])
            #expect(runs.map(\.status) == [.problemFound])
            #expect(runs.map(\.detail) == [#"{"n":1}"#])
            #expect(runs.map(\.endedAt) == [Date(timeIntervalSince1970: 2)])

            let error = #expect(throws: CatalogError.self) {
                try db.execute("UPDATE runs SET status = 'done'")
            }
            #expect(error?.message.contains("CHECK constraint failed") == true)
        }
    }

    @Test func aRunOfAnUnknownKindIsReportedNotMisread() throws {
        try withCatalogPath { path in
            let catalog = try SQLiteCatalog(path: path)
            try SQLiteDatabase(path: path).execute(
                """
                INSERT INTO runs (tenant, kind, started_at, status, detail) VALUES (NULL, 'teleport', 1, 'running', '{}')
                """)
            let error = #expect(throws: CatalogError.self) { try catalog.runs(tenant: nil, kind: nil, limit: 1) }
            #expect(error?.code == .corrupt)
            #expect(error?.message.contains("'teleport'") == true)
        }
    }

    @Test func aCatalogFromANewerTresorIsRefused() throws {
        try withCatalogPath { path in
            _ = try SQLiteCatalog(path: path)
            try SQLiteDatabase(path: path).execute("INSERT INTO schema_version (version) VALUES (\(SQLiteCatalog.latestSchemaVersion + 1))")

            let error = #expect(throws: CatalogError.self) { try SQLiteCatalog(path: path) }
            #expect(error?.code == .unsupportedSchema)
            #expect(error?.kind == .failed)
            let latest = SQLiteCatalog.latestSchemaVersion
            #expect(error?.message == "catalog schema version \(latest + 1) is newer than this tresor understands (\(latest))")
        }
    }

    @Test func fileUsesWALAndStoresDatesAsUnixMilliseconds() throws {
        try withCatalogPath { path in
            let catalog = try SQLiteCatalog(path: path)
            try catalog.addStore(sampleStore("primary"))  // added 2026-01-05T09:00:00.250Z
            var tenant = sampleTenant("acme")  // created 2026-02-01T00:00:00.001Z
            tenant.docRoots = ["/b", "/a"]
            try catalog.addTenant(tenant)

            let db = try SQLiteDatabase(path: path)
            #expect(try db.query("PRAGMA journal_mode") { $0.text(0) } == ["wal"])
            #expect(
                try db.query("SELECT added_at, typeof(added_at) FROM stores") { "\($0.int64(0)) \($0.text(1))" }
                    == ["1767603600250 integer"])
            #expect(
                try db.query("SELECT created_at, contract_end IS NULL FROM tenants") { [$0.int64(0), $0.int64(1)] }
                    == [[1_769_904_000_001, 1]])
            #expect(
                try db.query("SELECT tenant, position, path FROM tenant_doc_roots ORDER BY position") {
                    "\($0.text(0)) \($0.int64(1)) \($0.text(2))"
                } == ["acme 0 /b", "acme 1 /a"])
        }
    }

    @Test func aFileThatIsNotADatabaseIsReportedCorrupt() throws {
        try withCatalogPath { path in
            try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: CatalogError.self) { try SQLiteCatalog(path: path) }
            #expect(error?.code == .corrupt)
            #expect(error?.kind == .failed)
            #expect(error?.message.contains("file is not a database") == true)
            #expect(error?.hint != nil)
        }
    }

    @Test func aMissingDirectoryIsAFailureWithSQLitesReason() throws {
        try withCatalogPath { path in
            let inMissingDirectory = path + ".d/nested/catalog.sqlite"
            let error = #expect(throws: CatalogError.self) { try SQLiteCatalog(path: inMissingDirectory) }
            #expect(error?.code == .sqlite)
            #expect(error?.kind == .failed)
            #expect(error?.message == "cannot open catalog '\(inMissingDirectory)': unable to open database file")
            #expect(error?.hint?.contains("directory") == true)
        }
    }

    @Test func badSQLCarriesSQLitesMessage() throws {
        try withCatalogPath { path in
            let db = try SQLiteDatabase(path: path)
            let error = #expect(throws: CatalogError.self) { try db.prepare("SELEC 1") }
            #expect(error?.message == #"cannot prepare catalog statement: near "SELEC": syntax error"#)
            #expect(error?.kind == .failed)
        }
    }

    @Test func textSurvivesBindingByteForByte() throws {
        try withCatalogPath { path in
            let db = try SQLiteDatabase(path: path)
            for text in ["", "plain", "zürich ☃ 🗄️", "nul\u{0}inside", String(repeating: "x", count: 100_000)] {
                #expect(try db.query("SELECT ?", [.text(text)]) { $0.text(0) } == [text])
            }
            #expect(
                try db.query("SELECT ?, ?", [.null, .int64(Int64.min)]) { [$0.optionalText(0), $0.optionalInt64(1).map(String.init)] }
                    == [[nil, "\(Int64.min)"]])
        }
    }

    @Test func aWrongNumberOfValuesIsRefused() throws {
        try withCatalogPath { path in
            let db = try SQLiteDatabase(path: path)
            let error = #expect(throws: CatalogError.self) { try db.query("SELECT ?, ?", [.int64(1)]) { _ in 0 } }
            #expect(error?.message == "cannot bind catalog statement: it takes 2 values, got 1")
        }
    }

    @Test func aThrowingTransactionIsRolledBack() throws {
        struct Abort: Error {}
        try withCatalogPath { path in
            let db = try SQLiteDatabase(path: path)
            try db.exec("CREATE TABLE t (x INTEGER)")
            #expect(throws: Abort.self) {
                try db.transaction {
                    try db.execute("INSERT INTO t (x) VALUES (1)")
                    throw Abort()
                }
            }
            try db.transaction { try db.execute("INSERT INTO t (x) VALUES (2)") }
            #expect(try db.query("SELECT x FROM t") { $0.int64(0) } == [2])
        }
    }
}
