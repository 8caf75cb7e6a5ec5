import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorTestSupport

@testable import TresorEvidence

/// A drill record as a test writes it: `checks` decide the result, figures are plain numbers.
func sampleDrill(
    _ checks: [DrillRecord.Check] = [.passed("connect"), .passed("amcheck")], rtoMs: Int64? = 480_000,
    target: DrillRecord.Target.Kind = .random, rpoMs: Int64? = nil, selfTest: Bool = false
) throws -> DrillRecord {
    try DrillRecord(
        drillID: "d-\(UUID().uuidString.prefix(8))", seed: 42,
        target: .init(kind: target, time: Date(timeIntervalSince1970: 1_764_000_000)), checks: checks,
        rtoMs: rtoMs, rpoMs: rpoMs, bytesRestored: 123_456_789, filesRestored: 1_234,
        timings: .init(restoreMs: 300_000, recoveryMs: 120_000, checksMs: 60_000), selfTest: selfTest,
        tresorVersion: "0.1.0", postgresVersion: "15.18")
}

@Suite struct DrillRecordTests {
    @Test func aDrillWithACheckNotRunOrNoChecksIsAFailNeverAPass() throws {
        #expect(try sampleDrill().result == .pass)
        #expect(try sampleDrill([.passed("connect"), .notRun("amcheck", reason: "amcheck extension is not installed")]).result == .fail)
        #expect(try sampleDrill([.failed("pg_verifybackup", reason: "checksum mismatch in base/5/16384")]).result == .fail)
        #expect(try sampleDrill([]).result == .fail)
    }

    @Test func aCheckThatDidNotPassNeedsAReasonAndAPassedOneCarriesNone() throws {
        #expect(throws: EvidenceError.self) { try sampleDrill([.notRun("amcheck", reason: "")]) }
        #expect(throws: EvidenceError.self) { try sampleDrill([DrillRecord.Check(name: "amcheck", status: .failed, reason: nil)]) }
        #expect(throws: EvidenceError.self) { try sampleDrill([DrillRecord.Check(name: "amcheck", status: .passed, reason: "x")]) }
        #expect(throws: EvidenceError.self) { try sampleDrill([.failed("x", reason: String(repeating: "a", count: 301))]) }
        #expect(throws: EvidenceError.self) { try sampleDrill(rtoMs: -1) }
    }

    /// The member names are the documented format (docs/evidence.md), written as literals here.
    @Test func payloadHasTheDocumentedMembersAndRoundTrips() throws {
        let d = try sampleDrill([.passed("connect"), .failed("amcheck", reason: "index corrupt")], target: .latest, rpoMs: 1_500)
        let p = try d.payload()
        #expect(
            Set(p.keys) == [
                "drill_id", "seed", "target", "checks", "result", "rto_ms", "rpo_ms", "bytes_restored",
                "files_restored", "timings", "self_test", "tresor_version", "postgres_version",
            ])
        #expect(p["result"] == "fail")
        #expect(p["target"] == .object(["kind": "latest", "time": "2025-11-24T16:00:00.000Z", "lsn": .null]))
        #expect(p["timings"] == .object(["restore_ms": 300_000, "recovery_ms": 120_000, "checks_ms": 60_000]))
        #expect(
            p["checks"]
                == .array([
                    .object(["name": "connect", "status": "passed", "reason": .null]),
                    .object(["name": "amcheck", "status": "failed", "reason": "index corrupt"]),
                ]))
        #expect(try DrillRecord(payload: p) == d)
    }

    /// A self-test's damages and its `caught_<name>` checks must agree: a record claiming a catch
    /// that its check denies (or the other way round), or damages on a real drill, is refused.
    @Test func aSelfTestRecordWhoseDamagesContradictItsChecksIsRefused() throws {
        func selfTest(_ status: DrillRecord.Damage.Status, check: DrillRecord.Check, selfTest: Bool = true) throws -> DrillRecord {
            try DrillRecord(
                drillID: "s-1", seed: 1, target: .init(kind: .random, lsn: "0/3000028"), checks: [.passed("baseline"), check],
                rtoMs: 1, rpoMs: nil, bytesRestored: 1, filesRestored: 1, timings: .init(restoreMs: 1, recoveryMs: 1, checksMs: 1),
                selfTest: selfTest, tresorVersion: "t", postgresVersion: "15",
                damages: [
                    .init(
                        name: "flipped_relation_byte", status: status, caughtBy: status == .caught ? ["pg_verifybackup"] : [],
                        reason: status == .caught ? nil : "NOT CAUGHT: every check passed over the damaged copy")
                ])
        }
        let ok = try selfTest(.caught, check: .passed("caught_flipped_relation_byte"))
        #expect(ok.result == .pass)
        let p = try ok.payload()
        #expect(
            p["damages"] == .array([.object(["name": "flipped_relation_byte", "status": "caught", "caught_by": .array(["pg_verifybackup"]), "reason": .null])]))
        #expect(try DrillRecord(payload: p) == ok)
        let missed = try selfTest(.notCaught, check: .failed("caught_flipped_relation_byte", reason: "NOT CAUGHT"))
        #expect(missed.result == .fail)
        #expect(throws: EvidenceError.self) { try selfTest(.notCaught, check: .passed("caught_flipped_relation_byte")) }
        #expect(throws: EvidenceError.self) { try selfTest(.caught, check: .failed("caught_flipped_relation_byte", reason: "x")) }
        #expect(throws: EvidenceError.self) { try selfTest(.caught, check: .passed("caught_flipped_relation_byte"), selfTest: false) }
    }

    /// A correctly signed record whose payload claims a pass its checks contradict (a writer bug
    /// or a hand-made record) is named as invalid and never counts as the tenant's pass.
    @Test func aSignedRecordClaimingPassWithACheckNotRunNeverCountsAsAPass() throws {
        let dir = TempDirectory("tresor-drill")
        let key = Ed25519PrivateKey()
        let t0 = Date(timeIntervalSince1970: 1_764_000_000)
        let log = EvidenceLog(url: dir.sub("log.jsonl"), signer: key, clock: FixedClock(t0))
        var payload = try sampleDrill([.passed("connect"), .notRun("amcheck", reason: "no amcheck")]).payload()
        payload["result"] = "pass"
        try log.append(kind: .drill, tenant: "acme", payload: payload)
        try log.append(kind: .drill, tenant: "beta", payload: try sampleDrill().payload())
        var history = DrillHistory()
        let v = try EvidenceVerifier.verify(log: log.url, trustedKey: key.publicKey) { r, _ in history.add(r) }
        #expect(v.intact)
        #expect(history.invalid.map(\.seq) == [1])
        #expect(history.invalid.first?.reason.contains("contradicts") == true)
        let s = DrillControl.evaluate(
            history: history, tenants: ["acme", "beta"], asOf: t0.addingTimeInterval(86400),
            maxAge: PolicyDuration("30d")!)
        #expect(s.map(\.state) == [.neverPassed, .ok])
    }

    @Test func theControlCountsAgeFromTheLastPassAndIgnoresSelfTestsFailuresAndLaterDrills() throws {
        let dir = TempDirectory("tresor-drill")
        let key = Ed25519PrivateKey()
        let day = 86400.0
        let t0 = Date(timeIntervalSince1970: 1_764_000_000)
        func append(_ tenant: String, _ d: DrillRecord, at days: Double) throws {
            try EvidenceLog(url: dir.sub("log.jsonl"), signer: key, clock: FixedClock(t0.addingTimeInterval(days * day)))
                .append(kind: .drill, tenant: tenant, payload: d.payload())
        }
        try append("acme", try sampleDrill(), at: 0)
        try append("acme", try sampleDrill([.failed("amcheck", reason: "corrupt")]), at: 5)
        try append("acme", try sampleDrill(selfTest: true), at: 6)
        try append("acme", try sampleDrill(), at: 40)  // after the instant evaluated below
        var history = DrillHistory()
        _ = try EvidenceVerifier.verify(log: dir.sub("log.jsonl"), trustedKey: key.publicKey) { r, _ in history.add(r) }
        let maxAge = PolicyDuration("30d")!
        let at29 = DrillControl.evaluate(history: history, tenants: ["acme"], asOf: t0.addingTimeInterval(29 * day), maxAge: maxAge)
        #expect(at29[0].state == .ok && at29[0].ageDays == 29 && at29[0].lastPassSeq == 1)
        #expect(at29[0].lastDrillResult == .fail)
        let at31 = DrillControl.evaluate(history: history, tenants: ["acme"], asOf: t0.addingTimeInterval(31 * day), maxAge: maxAge)
        #expect(at31[0].state == .overdue && at31[0].ageDays == 31)
    }
}
