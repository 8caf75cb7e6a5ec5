import Foundation
import TresorCatalog
import TresorCore
import TresorEvidence
import TresorPostgres

/// What `tresor drill self-test` did.
public struct DrillSelfTestResult: Codable, Sendable {
    public var tenant: String
    /// The `drill` evidence record with `self_test` true and one entry per damage.
    public var record: DrillRecord
    public var evidenceSeq: Int64?
    /// ok only when the undamaged drill passed and every damage was caught; otherwise
    /// problemFound (exit 3).
    public var outcome: Outcome
}

extension Installation {
    /// `tresor drill self-test T`: **a drill that cannot fail cannot pass.** Runs the drill once
    /// over an undamaged copy (the baseline, which must pass: a drill that always fails would
    /// "catch" everything), then once per damage over a copy damaged that way (``DrillDamages``:
    /// a flipped byte in a relation file, the WAL segment of the target withheld, a wrong document
    /// hash), all to the same random target (one seed). A damage is caught when a check of its
    /// copy failed; not run when it could not be applied. The self-test passes only when the
    /// baseline passed and every damage was caught, and is recorded as one `drill` record with
    /// `self_test` true, a `baseline` check, a `caught_<damage>` check per damage and the damages
    /// with the checks that caught each. It never counts as the tenant's restore test.
    ///
    /// `damages`: what to apply (a tenant without document roots gets no document damage); the
    /// standard three unless a caller (a test proving that an
    /// invisible damage fails the self-test) passes others.
    public func runDrillSelfTest(
        tenant id: TenantID, seed: Int64?, binary: String,
        binDirectory: String = RecoveryServer.defaultBinDirectory,
        damages: [any DrillDamage] = DrillDamages.standard
    ) throws -> DrillSelfTestResult {
        let name = id.rawValue
        let tenantRecord = try tenant(id)
        _ = try DrillScratch(home: home).cleanLeftovers()
        return try recordRun(.drillSelfTest, tenant: id) { () throws -> DrillSelfTestResult in
            let seedUsed = seed ?? Int64(bitPattern: UInt64.random(in: 0...UInt64.max))
            let baseline = try performDrill(tenantRecord, .random, seed: seedUsed, damage: nil, binary: binary, binDirectory: binDirectory)
            var checks: [DrillRecord.Check] = []
            if let bad = baseline.checks.first(where: { $0.status != .passed }) {
                checks.append(
                    .failed(
                        "baseline", reason: DrillRun.reason("the undamaged copy did not pass (\(bad.name) \(bad.status.rawValue)), so no catch proves anything")
                    ))
            } else {
                checks.append(.passed("baseline"))
            }
            var found: [DrillRecord.Damage] = []
            var bytes = baseline.bytes, files = baseline.files
            var timings = baseline.timings
            // A tenant without document roots has no document check to prove: its record lists no
            // document damage (visible by its absence), rather than failing every self-test.
            let applicable = damages.filter { !($0 is DrillDamages.WrongDocumentHash) || !tenantRecord.docRoots.isEmpty }
            for damage in applicable {
                let damaged = try performDrill(tenantRecord, .random, seed: seedUsed, damage: damage, binary: binary, binDirectory: binDirectory)
                bytes += damaged.bytes
                files += damaged.files
                timings.restoreMs += damaged.timings.restoreMs
                timings.recoveryMs += damaged.timings.recoveryMs
                timings.checksMs += damaged.timings.checksMs
                // Only a check that ran and failed catches; not run (a timeout, a missing tool) does not.
                let failed = damaged.checks.filter { $0.status == .failed && $0.name != "cleanup" }.map(\.name)
                let entry: DrillRecord.Damage
                if let error = damaged.damageError {
                    entry = .init(name: damage.name, status: .notRun, caughtBy: [], reason: DrillRun.reason("the damage could not be applied: \(error)"))
                } else if !damaged.damageApplied {
                    entry = .init(name: damage.name, status: .notRun, caughtBy: [], reason: "the damage was never applied (nothing of its kind was restored)")
                } else if failed.isEmpty {
                    entry = .init(
                        name: damage.name, status: .notCaught, caughtBy: [],
                        reason: "NOT CAUGHT: every check passed over the damaged copy")
                } else {
                    entry = .init(name: damage.name, status: .caught, caughtBy: failed, reason: nil)
                }
                if let cleanup = damaged.checks.first(where: { $0.name == "cleanup" }) { checks.append(cleanup) }
                found.append(entry)
                switch entry.status {
                case .caught: checks.append(.passed("caught_" + damage.name))
                case .notCaught: checks.append(.failed("caught_" + damage.name, reason: entry.reason!))
                case .notRun: checks.append(.notRun("caught_" + damage.name, reason: entry.reason!))
                }
            }
            let record = try DrillRecord(
                drillID: UUID().uuidString.lowercased(), seed: seedUsed, target: baseline.target, checks: checks,
                rtoMs: baseline.rtoMs, rpoMs: nil, bytesRestored: bytes, filesRestored: files, timings: timings, selfTest: true,
                tresorVersion: Self.tresorVersion, postgresVersion: baseline.postgresVersion, damages: found)
            let appended = try recordDrill(tenant: id, record)
            return DrillSelfTestResult(
                tenant: name, record: record, evidenceSeq: appended.record.seq,
                outcome: record.result == .pass ? .ok : .problemFound)
        } status: {
            RunStatus($0.outcome)
        } detail: {
            $0
        }
    }
}
