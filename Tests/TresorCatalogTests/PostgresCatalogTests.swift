import Foundation
import Testing
import TresorCore
import TresorPostgres
import TresorTestSupport

@testable import TresorCatalog

/// What only the PostgreSQL catalog has: its own migrations, concurrent first opens, and
/// connection errors that must not show the DSN's password.
@Suite("PostgreSQL catalog")
struct PostgresCatalogTests {
    @Test func everySQLiteMigrationHasItsPostgresTwinWithTheSameNumber() {
        #expect(PostgresCatalog.migrations.count == SQLiteCatalog.migrations.count)
    }

    @Test func concurrentFirstOpensMigrateOnce() throws {
        let cluster = try ScratchCluster.shared()
        let db = try cluster.freshDatabase(prefix: "migrate")
        defer { _ = try? cluster.sql("DROP DATABASE \(db.name) WITH (FORCE)") }
        let sink = ErrorSink()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            sink.record { _ = try PostgresCatalog(dsn: db.dsn) }
        }
        #expect(sink.errors == [])
        let versions = try cluster.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version", database: db.name)
        #expect(versions == (1...SQLiteCatalog.migrations.count).map(String.init).joined(separator: ","))
        #expect(try PostgresCatalog(dsn: db.dsn).schemaVersion() == PostgresCatalog.latestSchemaVersion)
    }

    @Test func anUnreachableCatalogErrorNamesTheServerButNotThePassword() throws {
        let port = try RecoveryServer.freePort()
        let error = #expect(throws: CatalogError.self) {
            _ = try PostgresCatalog(dsn: "postgresql://tresor:Fl33tS3cret@127.0.0.1:\(port)/tresor")
        }
        #expect(error?.code == .postgres)
        #expect(error?.kind == .failed)
        let text = "\(String(describing: error)) \(error?.message ?? "") \(error?.hint ?? "")"
        #expect(!text.contains("Fl33tS3cret"))
        #expect(text.contains("127.0.0.1"))
        #expect(text.contains("password=***"))
    }
}
