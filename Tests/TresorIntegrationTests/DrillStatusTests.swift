import Foundation
import Testing
import TresorCore
import TresorEngine
import TresorEvidence
import TresorTestSupport

/// Appends a drill record to a home's evidence log the way `tresor drill run` will: through the
/// engine, signed with the home's key, at the instant `time` (the injected clock).
func recordDrill(
    home: String, tenant: String, at time: String, failing check: String? = nil, rtoMs: Int64 = 480_000,
    target: DrillRecord.Target.Kind = .random, rpoMs: Int64? = nil
) throws {
    let installation = try Installation.open(
        home: Home(root: URL(fileURLWithPath: home)), configFile: nil,
        clock: FixedClock(TimeFormat.parse(time)!))
    var checks: [DrillRecord.Check] = [.passed("pg_verifybackup"), .passed("connect"), .passed("target_reached")]
    checks.append(check.map { .failed($0, reason: "pg_amcheck reported 1 corrupt index page") } ?? .passed("amcheck"))
    try installation.recordDrill(
        tenant: TenantID(tenant),
        DrillRecord(
            drillID: UUID().uuidString, seed: 7, target: .init(kind: target, time: TimeFormat.parse(time)!.addingTimeInterval(-3600)),
            checks: checks, rtoMs: rtoMs, rpoMs: rpoMs, bytesRestored: 1_610_612_736, filesRestored: 2_048,
            timings: .init(restoreMs: rtoMs / 2, recoveryMs: rtoMs / 4, checksMs: rtoMs / 4), selfTest: false,
            tresorVersion: "0.1.0", postgresVersion: "15.18"))
}

/// `tresor drill status`: the 30-day control, through the real binary, with an injected clock.
@Suite(.serialized) struct DrillStatusTests {
    func small() -> CorpusBuilder.Options {
        var o = CorpusBuilder.Options()
        o.smallFiles = 2
        o.largeFiles = 0
        return o
    }

    func lines(_ f: Fixture) throws -> Int {
        try String(contentsOfFile: f.home + "/evidence/log.jsonl", encoding: .utf8).split(separator: "\n").count
    }

    @Test func twentyNineDaysAfterThePassExitsZeroThirtyOneExitsThreeAndTheCheckIsEvidence() throws {
        let f = try Fixture(corpus: small())
        try recordDrill(home: f.home, tenant: "acme", at: "2026-11-01T02:00:00Z")
        try recordDrill(home: f.home, tenant: "acme", at: "2026-11-05T02:00:00Z", failing: "amcheck")  // a later failure

        let ok = try f.tresor.run(["--json", "--now", "2026-11-30T02:00:00Z", "drill", "status"])
        #expect(ok.code == 0, "\(ok.stdout) \(ok.stderr)")
        let tenant = try #require((ok.json()?["tenants"] as? [[String: Any]])?.first)
        #expect(tenant["tenant"] as? String == "acme" && tenant["state"] as? String == "ok")
        #expect(tenant["lastPassSeq"] as? Int == 1 && tenant["ageDays"] as? Int == 29 && tenant["lastDrillResult"] as? String == "fail")
        #expect(ok.json()?["controlRecordSeq"] as? Int == 3)

        var env = f.tresor
        env.environment["TRESOR_NOW"] = "2026-12-02T02:00:00Z"
        let late = try env.run(["drill", "status"])
        #expect(late.code == 3)
        #expect(late.stdout.contains("OVERDUE\tacme\tlast pass 2026-11-01T02:00:00Z (31 days, record 1)"), "\(late.stdout)")

        // The policy's 30 days are a default: a longer allowed age on the command line passes.
        #expect(try env.run(["drill", "status", "--max-age", "40d"]).code == 0)
        #expect(try env.run(["drill", "status", "--max-age", "soon"]).code == 2)

        // Each check is a signed control record, and the log still verifies.
        let controls = try f.expectOK(["--json", "evidence", "list", "--kind", "control"]).json()?["entries"] as? [[String: Any]]
        #expect(controls?.count == 3)
        let payloads = controls?.compactMap { $0["payload"] as? [String: Any] } ?? []
        #expect(payloads.map { $0["result"] as? String } == ["pass", "fail", "pass"])
        #expect(payloads.map { $0["max_age_ms"] as? Int } == [2_592_000_000, 2_592_000_000, 3_456_000_000])
        let lateEntry = (payloads[1]["late"] as? [[String: Any]])?.first
        #expect(
            lateEntry?["tenant"] as? String == "acme" && lateEntry?["state"] as? String == "overdue"
                && lateEntry?["last_pass_seq"] as? Int == 1)
        #expect(try f.expectOK(["--json", "evidence", "verify"]).json()?["verifiedRecords"] as? Int == 5)
        // The auditors' verifier, without Tresor, accepts the drill and control records too.
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../scripts/verify-evidence.py").standardizedFileURL.path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, f.home + "/evidence/log.jsonl", f.home + "/keys/evidence.pub"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    @Test func aTornTailIsReportedOnceThenSetAsideByTheControlsOwnRecord() throws {
        let f = try Fixture(corpus: small())
        try recordDrill(home: f.home, tenant: "acme", at: "2026-11-01T02:00:00Z")
        let handle = try #require(FileHandle(forWritingAtPath: f.home + "/evidence/log.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"sig\":\"00".utf8))
        try handle.close()
        let first = try f.tresor.run(["--json", "--now", "2026-11-02T00:00:00Z", "drill", "status"])
        #expect(first.code == 3)
        #expect((first.json()?["chain"] as? [String: Any])?["tornTailBytes"] as? Int == 10)
        #expect(first.json()?["controlRecordSeq"] as? Int == 3, "after the log-repair record: \(first.stdout)")
        #expect(try f.tresor.run(["--now", "2026-11-02T00:00:00Z", "drill", "status"]).code == 0)
        #expect(try f.tresor.run(["evidence", "verify"]).code == 0)
    }

    @Test func aSignedDrillRecordThatIsNotAValidDrillIsAProblemNotAPass() throws {
        let f = try Fixture(corpus: small())
        let installation = try Installation.open(
            home: Home(root: URL(fileURLWithPath: f.home)), configFile: nil,
            clock: FixedClock(TimeFormat.parse("2026-11-01T02:00:00Z")!))
        try installation.recordEvidence(kind: .drill, tenant: "acme", payload: ["drill_id": "x", "result": "pass"])
        let r = try f.tresor.run(["--now", "2026-11-02T00:00:00Z", "drill", "status"])
        #expect(r.code == 3)
        #expect(r.stdout.contains("PROBLEM: drill record 1 is not counted: not a valid drill record: target is missing"), "\(r.stdout)")
        #expect(r.stdout.contains("NEVER  \tacme"))
    }

    @Test func aTenantThatNeverPassedExitsThree() throws {
        let f = try Fixture(corpus: small())
        try f.expectOK(["tenant", "add", "beta", "--region", "eu-central", "--store", "local", "--docs", f.docs.path])
        try recordDrill(home: f.home, tenant: "acme", at: "2026-11-01T02:00:00Z")
        try recordDrill(home: f.home, tenant: "beta", at: "2026-11-01T03:00:00Z", failing: "amcheck")
        let r = try f.tresor.run(["--now", "2026-11-02T00:00:00Z", "drill", "status"])
        #expect(r.code == 3)
        #expect(r.stdout.contains("NEVER  \tbeta\tno passing drill") && r.stdout.contains("ok     \tacme"), "\(r.stdout)")
        #expect(r.stdout.contains("1 of 2 tenants passed a drill within 30d"))
    }

    @Test func aLogThatFailsVerificationExitsThreeWithTheReasonAndGetsNoControlRecord() throws {
        let f = try Fixture(corpus: small())
        try recordDrill(home: f.home, tenant: "acme", at: "2026-11-01T02:00:00Z")
        try recordDrill(home: f.home, tenant: "acme", at: "2026-11-20T02:00:00Z")
        // Turn the newer drill into a pass of a later date: its signature no longer verifies.
        let logFile = f.home + "/evidence/log.jsonl"
        let text = try String(contentsOfFile: logFile, encoding: .utf8)
        try text.replacingOccurrences(of: "2026-11-20T02:00:00.000Z", with: "2026-11-28T02:00:00.000Z")
            .write(toFile: logFile, atomically: true, encoding: .utf8)
        let before = try lines(f)
        let r = try f.tresor.run(["--json", "--now", "2026-12-03T00:00:00Z", "drill", "status"])
        #expect(r.code == 3)
        let chain = r.json()?["chain"] as? [String: Any]
        #expect(chain?["intact"] as? Bool == false)
        #expect((chain?["firstBad"] as? String)?.hasPrefix("line 2 (record 2): the signature does not verify") == true, "\(r.stdout)")
        // Only the verified first drill counts: acme is overdue (31 days), not fresh (4 days).
        #expect(((r.json()?["tenants"] as? [[String: Any]])?.first)?["ageDays"] as? Int == 31)
        let after = try lines(f)
        #expect(r.json()?["controlRecordSeq"] == nil && after == before)
        let human = try f.tresor.run(["--now", "2026-12-03T00:00:00Z", "drill", "status"])
        #expect(human.code == 3 && human.stdout.contains("PROBLEM: the evidence log does not verify at line 2 (record 2)"))
    }
}
