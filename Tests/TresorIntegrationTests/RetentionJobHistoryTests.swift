import Foundation
import Testing
import TresorTestSupport

/// Job history under `job_history.retention` (183 days by default), in `retention apply`.
@Suite(.serialized) struct RetentionJobHistoryTests {
    static func day(_ d: Int) -> String { RetentionCommandTests.time(day: d) }

    func runs(_ f: Fixture, tenant: String) throws -> [[String: Any]] {
        let out = try f.expectOK(["--json", "jobs", "--tenant", tenant]).stdout
        return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]], "\(out)")
    }

    @Test func jobHistoryOlderThanThePolicysPeriodIsDeletedWithEvidenceCounts() throws {
        let f = try Fixture(corpus: RetentionCommandTests.small())
        try f.expectOK(["tenant", "add", "beta", "--region", "eu-central", "--store", "local", "--docs", f.docs.path])
        for d in [0, 1, 2] { try f.expectOK(["--now", Self.day(d), "docs", "backup", "acme"]) }
        try f.expectOK(["--now", Self.day(0), "docs", "backup", "beta"])
        // An old failed restore: the newest of its kind, but not a finished-ok run tick reads.
        let failed = try f.tresor.run(["--now", Self.day(1), "docs", "restore", "acme", "--to", f.dir.sub("r").path, "--snapshot", "0123456789abcdef"])
        #expect(failed.code != 0)
        try f.expectOK(["--now", Self.day(190), "docs", "backup", "acme"])
        let before = try runs(f, tenant: "acme")

        // Day 200 minus 183 days: runs that ended before day 17 go, except the newest finished
        // docs backup (day 190 is newer anyway) — so days 0, 1, 2 and the failed restore.
        let dry = try #require(try f.expectOK(["--json", "--now", Self.day(200), "retention", "apply", "acme", "--dry-run"]).jsonArray()?.first)
        let dryClass = try #require((dry["classes"] as? [[String: Any]])?.first)
        #expect(dryClass["name"] as? String == "job-history" && dryClass["deleted"] as? Int == 4, "\(dryClass)")
        #expect(try runs(f, tenant: "acme").count == before.count + 1, "a dry run deletes nothing (and records no run)")

        let r = try #require(try f.expectOK(["--json", "--now", Self.day(200), "retention", "apply", "acme"]).jsonArray()?.first)
        let c = try #require((r["classes"] as? [[String: Any]])?.first)
        #expect(c["deleted"] as? Int == 4, "\(c)")
        #expect(c["deletedByKind"] as? [String: Int] == ["docs-backup": 3, "docs-restore": 1], "\(c)")
        let after = try runs(f, tenant: "acme")
        let kinds = after.compactMap { $0["kind"] as? String }.sorted()
        #expect(kinds == ["docs-backup", "retention", "retention"], "\(after)")
        #expect(try runs(f, tenant: "beta").count == 1, "another tenant's history is its own")

        let evidence = try f.expectOK(["--json", "evidence", "list", "--kind", "retention"]).stdout
        #expect(evidence.contains("job-history") && evidence.contains("job_history.retention"), "\(evidence)")

        // The newest finished run of a kind stays however old: tick reads it to decide what is due.
        try f.expectOK(["--json", "--now", Self.day(600), "retention", "apply", "acme"])
        #expect(try runs(f, tenant: "acme").compactMap { $0["kind"] as? String }.contains("docs-backup"))
    }
}
