import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorEvidence

extension Installation {
    /// `tresor tenant end-contract T --date D`: starts the deletion clock. The evidence record is
    /// appended first, then the catalog changes, so a contract end in force always has its record.
    public func endContract(tenant id: TenantID, at date: Date) throws -> TenantRecord {
        var t = try tenant(id)
        try recordEvidence(
            kind: .control, tenant: id,
            payload: [
                "action": .string("end-contract"), "contract_end": .string(TimeFormat.string(date)),
                "previous_contract_end": t.contractEnd.map { .string(TimeFormat.string($0)) } ?? .null,
                "deletion_delay": .string(policy.deletion.delayAfterContractEnd.description),
            ])
        t.contractEnd = date
        try catalog.updateTenant(t)
        return t
    }

    /// `tresor tenant hold T --reason R --by WHO`: a legal hold stops deletion until released.
    /// The reason may hold anything and the log is never redacted: the record keeps its SHA-256.
    public func holdTenant(_ id: TenantID, reason: String, by: String) throws -> TenantRecord {
        let name = id.rawValue
        var t = try tenant(id)
        guard !reason.isEmpty else { throw CoreError.usage("a hold needs a reason", hint: "tresor tenant hold \(name) --reason TEXT --by WHO") }
        try recordEvidence(
            kind: .control, tenant: id,
            payload: [
                "action": .string("hold"), "by": .string(by), "reason_sha256": .string(SHA256.hash(Array(reason.utf8)).hex),
            ])
        t.holdReason = reason
        try catalog.updateTenant(t)
        return t
    }

    /// `tresor tenant release T`: lifts a hold. Releasing a tenant without a hold is a usage error.
    public func releaseTenant(_ id: TenantID) throws -> TenantRecord {
        let name = id.rawValue
        var t = try tenant(id)
        guard t.holdReason != nil else {
            throw CoreError.usage("tenant '\(name)' is not on hold", hint: "tresor tenant list")
        }
        try recordEvidence(kind: .control, tenant: id, payload: ["action": .string("release")])
        t.holdReason = nil
        try catalog.updateTenant(t)
        return t
    }
}
