import Foundation
import Testing
import TresorCore
import TresorEngine
import TresorEvidence
import TresorTestSupport

/// A damage no drill check can see: a comment appended to `postgresql.auto.conf`, which
/// `pg_verifybackup` ignores (the restore writes it) and the server reads as nothing.
struct InvisibleDamage: DrillDamage {
    var name: String { "invisible_comment" }
    func damage(restored site: DrillDamageSite) throws -> Bool {
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: site.pgdata + "/postgresql.auto.conf"))
        try h.seekToEnd()
        try h.write(contentsOf: Data("\n# a damage nobody checks\n".utf8))
        try h.close()
        return true
    }
}

/// `tresor drill self-test` and the `drills.self_test_every` policy (issue 11): a drill that
/// cannot fail cannot pass.
@Suite(.serialized) struct DrillSelfTestTests {
    func damages(_ record: [String: Any]) -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for d in (record["damages"] as? [[String: Any]]) ?? [] { out[d["name"] as? String ?? "?"] = d }
        return out
    }

    @Test func everyNthDrillIsFollowedByASelfTestThatCatchesAFlippedByteAMissingWALSegmentAndAWrongDocumentHash() throws {
        let f = try DrillFixture()
        try f.cluster.stop()
        let policy = f.home + "/policies/default.toml"
        let text = try String(contentsOfFile: policy, encoding: .utf8)
        try text.replacingOccurrences(of: "self_test_every = 10", with: "self_test_every = 1").write(toFile: policy, atomically: true, encoding: .utf8)

        let r = try f.tresor.run(["--json", "drill", "run", "acme", "--target", "latest"])
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        let json = try #require(r.json())
        #expect((json["record"] as? [String: Any])?["self_test"] as? Bool == false)
        let selfTest = try #require((json["selfTest"] as? [String: Any])?["record"] as? [String: Any], "\(r.stdout)")
        #expect(selfTest["self_test"] as? Bool == true && selfTest["result"] as? String == "pass", "\(selfTest)")
        let found = damages(selfTest)
        #expect(Set(found.keys) == ["flipped_relation_byte", "missing_wal_segment", "wrong_document_hash"])
        #expect(found.values.allSatisfy { $0["status"] as? String == "caught" }, "\(found)")
        // Each damage is caught where it must be: the flipped byte by the manifest's checksums,
        // the withheld segment by recovery never reaching the target, the wrong hash by the sample.
        #expect((found["flipped_relation_byte"]?["caught_by"] as? [String])?.contains("pg_verifybackup") == true, "\(found)")
        let walCaught = Set((found["missing_wal_segment"]?["caught_by"] as? [String]) ?? [])
        #expect(!walCaught.isDisjoint(with: ["connect", "target_reached"]), "\(found)")
        #expect(found["wrong_document_hash"]?["caught_by"] as? [String] == ["documents_sample"], "\(found)")
        let checks = ((selfTest["checks"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
        #expect(checks == ["baseline", "caught_flipped_relation_byte", "caught_missing_wal_segment", "caught_wrong_document_hash"])
        #expect(f.scratchLeftovers().isEmpty && f.scratchServers().isEmpty)

        // Both are signed records: the drill and the self-test.
        let records = try f.drillRecords().compactMap { $0["payload"] as? [String: Any] }
        #expect(records.map { $0["self_test"] as? Bool } == [false, true])
        #expect(try f.expectOK(["--json", "evidence", "verify"]).json()?["verifiedRecords"] as? Int == 2)
    }

    @Test func aSelfTestWhoseDamageNoCheckSeesFailsLoudlyAndSaysNotCaught() throws {
        let f = try DrillFixture()
        try f.cluster.stop()
        let installation = try Installation.open(home: Home(root: URL(fileURLWithPath: f.home)), configFile: nil, clock: SystemClock())
        let r = try installation.runDrillSelfTest(
            tenant: TenantID("acme"), seed: 11, binary: TresorProcess.binary,
            damages: [InvisibleDamage(), DrillDamages.WrongDocumentHash()])
        #expect(r.outcome == .problemFound)
        #expect(r.record.result == .fail && r.record.selfTest)
        let byName = Dictionary(uniqueKeysWithValues: (r.record.damages ?? []).map { ($0.name, $0) })
        #expect(byName["invisible_comment"]?.status == .notCaught, "\(r.record)")
        #expect(byName["invisible_comment"]?.reason?.contains("NOT CAUGHT") == true)
        #expect(byName["wrong_document_hash"]?.status == .caught)
        #expect(r.record.checks.first { $0.name == "caught_invisible_comment" }?.status == .failed)
        #expect(r.record.checks.first { $0.name == "baseline" }?.status == .passed)
        #expect(f.scratchLeftovers().isEmpty && f.scratchServers().isEmpty)
        // The failure is in the signed log, and a self-test never counts as the restore test.
        let list = try f.expectOK(["--json", "evidence", "list", "--kind", "drill"])
        #expect(list.stdout.contains("not_caught"), "\(list.stdout)")
        #expect(try f.tresor.run(["drill", "status"]).code == 3)
    }

    @Test func aTimeTargetDrillRecordsTheLastReplayedAndTheNextArchivedCommitAroundTheTarget() throws {
        let f = try DrillFixture()
        try f.cluster.sql("INSERT INTO marker VALUES (10, clock_timestamp())")
        Thread.sleep(forTimeInterval: 1)
        let target = try f.cluster.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        Thread.sleep(forTimeInterval: 1)
        try f.cluster.sql("INSERT INTO marker VALUES (11, clock_timestamp())")
        try f.cluster.switchAndWaitForArchive()
        func at(_ id: Int) throws -> Date {
            let text = try f.cluster.sql("SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM marker WHERE id = \(id)")
            return try #require(TimeFormat.parse(text.trimmingCharacters(in: .whitespacesAndNewlines)), "\(text)")
        }
        let before = try at(10), after = try at(11)
        try f.cluster.stop()

        let r = try f.tresor.run(["--json", "drill", "run", "acme", "--target", target])
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        let t = try #require((r.json()?["record"] as? [String: Any])?["target"] as? [String: Any], "\(r.stdout)")
        let want = try #require(TimeFormat.parse(target))
        let replayed = try #require((t["replayed_commit"] as? String).flatMap(TimeFormat.parse), "\(t)")
        let next = try #require((t["next_commit"] as? String).flatMap(TimeFormat.parse), "\(t)")
        // The commits the test made on either side of the target, read back from the cluster:
        // row 10 committed after its clock_timestamp() and before the target, row 11 after both.
        #expect(before <= replayed && replayed <= want, "\(before) \(replayed) \(want)")
        // The next commit is row 11's (or one the server made in between), never a later one.
        #expect(want < next && next.timeIntervalSince(after) < 1, "\(want) \(after) \(next)")
    }
}

/// Heartbeats (issue 11): `tick` writes `tresor.heartbeat` for a tenant that opted in, and a
/// `latest` drill reads it back from the restore for the exact data-loss bound.
@Suite(.serialized) struct DrillHeartbeatTests {
    @Test func aLatestDrillRecordsTheHeartbeatTickWroteAndTheDataLossBoundItProves() throws {
        let f = try DrillFixture()
        let policy = f.home + "/policies/default.toml"
        let text = try String(contentsOfFile: policy, encoding: .utf8)
        try text.replacingOccurrences(of: "heartbeat_tenants = \"\"", with: "heartbeat_tenants = \"acme\"")
            .write(toFile: policy, atomically: true, encoding: .utf8)
        // Before any heartbeat: an opted-in tenant's latest drill fails its heartbeat check.
        let none = try f.tresor.run(["--json", "drill", "run", "acme", "--target", "latest"])
        #expect(none.code == 3, "\(none.stdout)\n\(none.stderr)")
        let noneChecks = ((none.json()?["record"] as? [String: Any])?["checks"] as? [[String: Any]]) ?? []
        #expect(noneChecks.first { $0["name"] as? String == "heartbeat" }?["status"] as? String == "failed", "\(noneChecks)")

        let tick = try f.tresor.run(["--json", "tick"])
        let jobs = (tick.json()?["jobs"] as? [[String: Any]]) ?? []
        #expect(jobs.contains { $0["kind"] as? String == "heartbeat" && $0["result"] as? String == "ok" }, "\(tick.stdout)\n\(tick.stderr)")
        // The heartbeat as the tenant's own database holds it.
        let written = try f.cluster.sql("SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM tresor.heartbeat")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try f.cluster.switchAndWaitForArchive()
        try f.cluster.stop()

        let before = Date()
        let r = try f.tresor.run(["--json", "drill", "run", "acme", "--target", "latest"])
        let after = Date()
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        let record = try #require(r.json()?["record"] as? [String: Any], "\(r.stdout)")
        #expect(record["heartbeat"] as? String == written, "\(record)")
        let heartbeat = try #require(TimeFormat.parse(String(written.prefix(19)) + "Z")).addingTimeInterval(Double("0" + written.dropFirst(19).dropLast()) ?? 0)
        let bound = try #require(record["data_loss_bound_ms"] as? Int, "\(record)")
        // now − heartbeat, with now the drill's start: between the test's clock before and after it.
        #expect(Double(bound) >= (before.timeIntervalSince(heartbeat) * 1000).rounded(.down) - 1)
        #expect(Double(bound) <= (after.timeIntervalSince(heartbeat) * 1000).rounded(.up) + 1)
    }
}
