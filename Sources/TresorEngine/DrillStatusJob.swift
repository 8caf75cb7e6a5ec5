import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorEvidence

extension Installation {
    /// The tenants the restore-test control and the report speak about: contract running, or
    /// ended but not yet deleted. A tenant whose deletion has destroyed its keys is no longer
    /// active (its backups cannot be restored any more); a deleted one has no tenant row.
    /// This is the one place that decides it.
    public func activeTenants() throws -> [String] {
        let deleting = Set(try catalog.deletions().filter { $0.step > .planned }.map(\.tenant))
        return try catalog.tenants().map(\.name).filter { !deleting.contains($0) }.sorted()
    }

    /// Appends a `drill` record for `tenant` (what `tresor drill run` and `drill self-test` call
    /// when a drill ends, passed or not). The record's time is this installation's clock.
    @discardableResult
    public func recordDrill(tenant id: TenantID, _ drill: DrillRecord) throws -> EvidenceLog.Appended {
        _ = try self.tenant(id)
        return try recordEvidence(kind: .drill, tenant: id, payload: try drill.payload())
    }

    /// Verifies the home's log with its anchor public key (never a key from the log) and collects
    /// the drill and control records of the verified prefix in the same pass.
    public func verifiedDrillHistory() throws -> (EvidenceVerification, DrillHistory) {
        let key = try EvidenceKeys.loadPublicKey(Self.evidenceAnchorURL(keyFile: evidenceKeyURL))
        var history = DrillHistory()
        let verification = try EvidenceVerifier.verify(log: home.evidenceLog, trustedKey: key) { record, _ in history.add(record) }
        return (verification, history)
    }

    /// `tresor drill status`: the restore-test control. For every active tenant, its last passing
    /// drill from the verified log; a tenant whose last pass is older than `maxAge` (default: the
    /// policy's `drills.max_age`) or that never passed is a problem found. The check itself is
    /// appended as a `control` record, unless the log fails verification before its end (then
    /// nothing is chained onto records that cannot be trusted, and the outcome is a problem).
    public func drillStatus(maxAge: PolicyDuration?) throws -> DrillStatusResult {
        let maxAge = maxAge ?? policy.drills.maxAge
        let now = clock.now()
        let tenants = try activeTenants()
        let (verification, history) = try verifiedDrillHistory()
        let statuses = DrillControl.evaluate(history: history, tenants: tenants, asOf: now, maxAge: maxAge)
        let late = statuses.filter { $0.state != .ok }
        var result = DrillStatusResult(
            asOf: now, maxAge: maxAge.description, tenants: statuses,
            chain: .init(verification), invalidDrillRecords: history.invalid,
            drillsAfterNow: history.entries.filter { $0.time > now }.count)
        if verification.firstBad == nil {
            // A torn tail alone leaves every complete record verified; this append sets it aside
            // with a signed log-repair record first (docs/evidence.md).
            let appended = try recordEvidence(
                kind: .control, tenant: nil,
                payload: [
                    "control": "restore-test-age",
                    "max_age_ms": .int(Int64(maxAge.seconds * 1000)),
                    "as_of": .string(TimeFormat.string(now, fractional: true)),
                    "tenants_checked": .int(Int64(tenants.count)),
                    "late": .array(
                        late.map { s in
                            .object([
                                "tenant": .string(s.tenant), "state": .string(s.state.rawValue),
                                "last_pass": s.lastPass.map { .string(TimeFormat.string($0, fractional: true)) } ?? .null,
                                "last_pass_seq": s.lastPassSeq.map(EvidenceValue.int) ?? .null,
                            ])
                        }),
                    "invalid_drill_records": .array(history.invalid.map { .int($0.seq) }),
                    "verified_through_seq": verification.headSeq.map(EvidenceValue.int) ?? .null,
                    "verified_head_hash": verification.headHash.map(EvidenceValue.string) ?? .null,
                    "result": .string(late.isEmpty && history.invalid.isEmpty ? "pass" : "fail"),
                ])
            result.controlRecordSeq = appended.record.seq
        }
        return result
    }
}

/// What `tresor drill status` found.
public struct DrillStatusResult: Sendable, Codable {
    /// The log's verification, as far as the control relies on it.
    public struct Chain: Sendable, Codable {
        public var intact: Bool
        public var verifiedRecords: Int
        public var trustedKeyFingerprint: String
        /// "line N (record S): reason" for the first bad record; nothing after it was read.
        public var firstBad: String?
        public var tornTailBytes: Int

        init(_ v: EvidenceVerification) {
            intact = v.intact
            verifiedRecords = v.verifiedRecords
            trustedKeyFingerprint = v.trustedKeyFingerprint
            firstBad = v.firstBad.map { "line \($0.line)\($0.seq.map { " (record \($0))" } ?? ""): \($0.reason)" }
            tornTailBytes = v.tornTailBytes
        }
    }

    public var asOf: Date
    public var maxAge: String
    public var tenants: [DrillControl.TenantStatus]
    public var chain: Chain
    /// Drill records in the verified log that are not valid drill records (named, never skipped).
    public var invalidDrillRecords: [DrillHistory.Invalid]
    /// Drill records dated after `asOf` (a clock set back with --now); not considered.
    public var drillsAfterNow: Int
    /// The `control` record this check appended; nil when the log failed verification.
    public var controlRecordSeq: Int64?

    public var overdue: [DrillControl.TenantStatus] { tenants.filter { $0.state != .ok } }

    public var outcome: Outcome {
        chain.intact && overdue.isEmpty && invalidDrillRecords.isEmpty ? .ok : .problemFound
    }
}
