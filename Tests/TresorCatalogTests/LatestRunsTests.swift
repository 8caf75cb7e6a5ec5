import Foundation
import Testing
import TresorCatalog
import TresorCore

/// What `tick` reads to decide what is due: the newest run per kind, tenant (or cleaned store)
/// and status, from one grouped read of the catalog.
@Suite struct LatestRunsTests {
    @Test func theNewestRunPerKindOwnerAndStatusIsFoundAndStoreCleansAreKeptApartByStore() throws {
        try withCatalogPath { path in
            let catalog = try SQLiteCatalog(path: path)
            let base = Date(timeIntervalSince1970: 1_800_000_000)
            func run(_ kind: RunKind, _ tenant: String?, _ hour: Double, _ status: RunStatus, _ detail: String = "{}") throws {
                let at = base.addingTimeInterval(hour * 3600)
                let id = try catalog.startRun(kind: kind, tenant: tenant, at: at)
                if status != .running { try catalog.finishRun(id: id, at: at, status: status, detail: detail) }
            }
            try run(.documentsBackup, "acme", 1, .ok)
            try run(.documentsBackup, "acme", 5, .ok)
            try run(.documentsBackup, "acme", 3, .ok)  // started earlier, recorded later
            try run(.documentsBackup, "acme", 7, .failed)
            try run(.documentsBackup, "acme", 9, .running)
            try run(.documentsBackup, "beta", 2, .problemFound)
            try run(.drill, "acme", 4, .ok)
            try run(.storeClean, nil, 1, .ok, #"{"store":"local"}"#)
            try run(.storeClean, nil, 6, .ok, #"{"store":"off"}"#)
            try run(.storeClean, nil, 2, .ok, #"{"store":"local"}"#)
            try run(.storeClean, nil, 8, .ok, "not json")
            try run(.tick, nil, 10, .ok)
            try run(.drillControl, nil, 3, .problemFound)

            let got = try catalog.latestRuns(
                kinds: [.documentsBackup, .storeClean, .drillControl, .drill],
                statuses: [.ok, .problemFound, .failed])
            let at = { (h: Double) in base.addingTimeInterval(h * 3600) }
            let expected: Set<LatestRun> = [
                LatestRun(kind: .documentsBackup, tenant: "acme", status: .ok, startedAt: at(5)),
                LatestRun(kind: .documentsBackup, tenant: "acme", status: .failed, startedAt: at(7)),
                LatestRun(kind: .documentsBackup, tenant: "beta", status: .problemFound, startedAt: at(2)),
                LatestRun(kind: .drill, tenant: "acme", status: .ok, startedAt: at(4)),
                LatestRun(kind: .storeClean, tenant: nil, store: "local", status: .ok, startedAt: at(2)),
                LatestRun(kind: .storeClean, tenant: nil, store: "off", status: .ok, startedAt: at(6)),
                // A detail without a store names none: that store-clean counts for no store.
                LatestRun(kind: .storeClean, tenant: nil, store: nil, status: .ok, startedAt: at(8)),
                LatestRun(kind: .drillControl, tenant: nil, status: .problemFound, startedAt: at(3)),
            ]
            #expect(Set(got) == expected)
            #expect(got.count == expected.count)
            // The protocol's generic answer (for catalogs without a grouped query) agrees.
            struct Plain: Catalog {
                let base: SQLiteCatalog
                func addStore(_ store: StoreRecord) throws { try base.addStore(store) }
                func store(named name: String) throws -> StoreRecord? { try base.store(named: name) }
                func stores() throws -> [StoreRecord] { try base.stores() }
                func addTenant(_ tenant: TenantRecord) throws { try base.addTenant(tenant) }
                func updateTenant(_ tenant: TenantRecord) throws { try base.updateTenant(tenant) }
                func tenant(named name: String) throws -> TenantRecord? { try base.tenant(named: name) }
                func tenants() throws -> [TenantRecord] { try base.tenants() }
                func addRegionApproval(_ approval: RegionApproval) throws { try base.addRegionApproval(approval) }
                func regionApprovals(tenant: String) throws -> [RegionApproval] { try base.regionApprovals(tenant: tenant) }
                func startRun(kind: RunKind, tenant: String?, at: Date) throws -> Int64 { try base.startRun(kind: kind, tenant: tenant, at: at) }
                func finishRun(id: Int64, at: Date, status: RunStatus, detail: String) throws {
                    try base.finishRun(id: id, at: at, status: status, detail: detail)
                }
                func runs(tenant: String?, kind: RunKind?, limit: Int) throws -> [RunRecord] { try base.runs(tenant: tenant, kind: kind, limit: limit) }
                func beginDeletion(tenant: String, plan: String, at: Date) throws -> DeletionRecord {
                    try base.beginDeletion(tenant: tenant, plan: plan, at: at)
                }
                func deletion(tenant: String) throws -> DeletionRecord? { try base.deletion(tenant: tenant) }
                func deletions() throws -> [DeletionRecord] { try base.deletions() }
                func updateDeletion(tenant: String, step: DeletionStep, report: String, finishedAt: Date?) throws {
                    try base.updateDeletion(tenant: tenant, step: step, report: report, finishedAt: finishedAt)
                }
                func purgeTenantRows(_ tenant: String) throws -> Int { try base.purgeTenantRows(tenant) }
                func tenantRowCount(_ tenant: String) throws -> Int { try base.tenantRowCount(tenant) }
                func pruneRuns(tenant: String?, endedBefore cutoff: Date, dryRun: Bool) throws -> [RunKind: Int] {
                    try base.pruneRuns(tenant: tenant, endedBefore: cutoff, dryRun: dryRun)
                }
                func claimJob(_ job: JobKey, worker: String, lease: TimeInterval, notDoneSince: Date?) throws -> JobClaim {
                    try base.claimJob(job, worker: worker, lease: lease, notDoneSince: notDoneSince)
                }
                func renewJob(_ job: JobKey, worker: String, lease: TimeInterval) throws -> Bool { try base.renewJob(job, worker: worker, lease: lease) }
                func releaseJob(_ job: JobKey, worker: String, doneAt: Date?) throws -> Bool { try base.releaseJob(job, worker: worker, doneAt: doneAt) }
            }
            let plain = try Plain(base: catalog).latestRuns(
                kinds: [.documentsBackup, .storeClean, .drillControl, .drill],
                statuses: [.ok, .problemFound, .failed])
            #expect(Set(plain) == expected)
        }
    }
}
