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

/// `retention.timezone` reaches the planner through `tresor retention plan`.
@Suite(.serialized) struct RetentionTimeZoneCommandTests {
    /// Day 0 is a UTC midnight in September 2026 (Berlin is UTC+2): 23:00Z on day 0 is 01:00 on
    /// day 1 in Berlin. In UTC it would be day 0's last snapshot and 12:00Z's would go.
    @Test func aBerlinPolicyCountsDaysInBerlinNotInUTC() throws {
        let f = try Fixture(corpus: RetentionCommandTests.small())
        try "[retention]\ntimezone = \"Europe/Berlin\"\n".write(toFile: f.home + "/policies/zz-zone.toml", atomically: true, encoding: .utf8)
        var ids: [String] = []
        for (day, hour) in [(0, 12), (0, 23), (1, 12)] {
            let r = try f.expectOK(["--json", "--now", RetentionCommandTests.time(day: day, hour: hour), "docs", "backup", "acme"])
            ids.append(try #require((r.json()?["snapshot"] as? [String: Any])?["id"] as? String))
        }
        let plan = try #require(
            try f.expectOK(["--json", "--now", RetentionCommandTests.time(day: 1, hour: 20), "retention", "plan", "acme"])
                .json()?["acme"] as? [String: Any])
        #expect(plan["timeZone"] as? String == "Europe/Berlin")
        let dropped = (plan["dropSnapshots"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
        #expect(dropped == [ids[1]], "\(plan)")
    }
}
