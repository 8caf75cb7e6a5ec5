import Foundation
import Testing
import TresorPostgres
import TresorTestSupport

/// `tresor catalog migrate --from sqlite --to postgresql://...` and what fleet mode must never
/// print: the catalog DSN's password.
@Suite struct CatalogMigrateTests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 3; o.largeFiles = 0; return o
    }()

    /// What an operator sees of the catalog, as JSON text.
    func views(_ f: Fixture) throws -> [String] {
        try [["tenant", "list", "--json"], ["store", "list", "--json"], ["jobs", "--json"]].map { try f.expectOK($0).stdout }
    }

    @Test func migrationCopiesEveryTableAndSwitchesTheConfig() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["store", "add", "us", "--url", "file://" + f.dir.sub("us").path, "--region", "us-east"])
        try f.expectOK(["tenant", "add", "beta", "--region", "eu-central", "--store", "local", "--docs", f.docs.path])
        try f.expectOK(["region", "approve", "acme", "--store", "us", "--by", "alice", "--reason", "dr site"])
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["docs", "backup", "beta"])
        try f.expectOK(["docs", "backup", "acme"])
        let before = try views(f)

        let cluster = try ScratchCluster.shared()
        let db = try cluster.freshDatabase(prefix: "migrate")
        defer { _ = try? cluster.sql("DROP DATABASE \(db.name) WITH (FORCE)") }
        // trust authentication ignores the password; it is here to be kept out of every output.
        let url = "postgresql://postgres:M1grateS3cret@127.0.0.1:\(cluster.port)/\(db.name)"
        let r = try f.expectOK(["--json", "catalog", "migrate", "--from", "sqlite", "--to", url])
        let result = try #require(r.json())
        let tables = try #require(result["tables"] as? [String: Int])
        #expect(tables["tenants"] == 2 && tables["stores"] == 2 && tables["region_approvals"] == 1)
        #expect(tables["tenant_doc_roots"] == 2 && tables["runs"] == 3)
        #expect(!r.stdout.contains("M1grateS3cret") && !r.stderr.contains("M1grateS3cret"))

        let config = try String(contentsOfFile: f.home + "/tresor.toml", encoding: .utf8)
        #expect(config.contains("catalog = \"\(url)\""))
        #expect(!config.contains("[catalog]"))
        // The same answers, now from PostgreSQL: the rows are really there, not re-derived.
        #expect(try cluster.sql("SELECT count(*) FROM runs WHERE kind = 'docs-backup' AND status = 'ok'", database: db.name) == "3")
        #expect(try views(f) == before)
        // New runs get new ids after the copied ones.
        try f.expectOK(["docs", "backup", "beta"])
        #expect(try cluster.sql("SELECT count(DISTINCT id) FROM runs", database: db.name) == "4")
        // Logs of a run on the PostgreSQL catalog never show the password either.
        let logged = try f.tresor.run(["--json", "--log-level", "debug", "tick", "--now", "2026-11-20T00:05:00Z"])
        #expect(!logged.stdout.contains("M1grateS3cret") && !logged.stderr.contains("M1grateS3cret"))
        #expect(logged.stderr.contains("\"job\""))

        // A second installation cannot be poured into the same, now non-empty, catalog.
        let other = try Fixture(corpus: Self.small)
        let refused = try other.tresor.run(["catalog", "migrate", "--from", "sqlite", "--to", url])
        #expect(refused.code == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("error: the target catalog is not empty"))
        #expect(refused.stderr.contains("hint: "))
        #expect(!refused.stderr.contains("M1grateS3cret"))
        #expect(try String(contentsOfFile: other.home + "/tresor.toml", encoding: .utf8).contains("[catalog]"))
        #expect(try cluster.sql("SELECT count(*) FROM tenants", database: db.name) == "2")
    }

    @Test func anUnreachableFleetCatalogFailsWithoutShowingItsPassword() throws {
        let f = try Fixture(corpus: Self.small)
        let config = f.home + "/tresor.toml"
        var text = try String(contentsOfFile: config, encoding: .utf8)
        let port = try RecoveryServer.freePort()
        text = text.replacingOccurrences(of: "[catalog]\npath = \"catalog.sqlite\"\n", with: "")
        text = "catalog = \"postgresql://tresor:Unr3achableS3cret@127.0.0.1:\(port)/tresor\"\n" + text
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        for args in [["tenant", "list"], ["--json", "tenant", "list"], ["--log-level", "debug", "tick"]] {
            let r = try f.tresor.run(args)
            #expect(r.code == 1, "\(args): \(r.code) \(r.stderr)")
            #expect(r.stderr.contains("cannot open the postgresql catalog") || r.stdout.contains("cannot open the postgresql catalog"))
            #expect(!r.stdout.contains("Unr3achableS3cret") && !r.stderr.contains("Unr3achableS3cret"), "\(args): \(r.stderr)")
        }
    }
}
