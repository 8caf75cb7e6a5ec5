import Foundation
import Testing
import TresorCatalog
import TresorCore

@Suite("Job history pruning on SQLite and PostgreSQL")
struct JobHistoryPruneTests {
    /// A finished run: `days` after jan5, with `detail`.
    private func run(
        _ c: SQLCatalog, _ kind: RunKind, _ tenant: String?, days: Double, _ status: RunStatus = .ok,
        detail: String = "{}"
    ) throws {
        let at = jan5.addingTimeInterval(days * 86400)
        let id = try c.startRun(kind: kind, tenant: tenant, at: at)
        try c.finishRun(id: id, at: at.addingTimeInterval(60), status: status, detail: detail)
    }

    @Test(arguments: CatalogBackend.allCases)
    func theInstallationsOwnRunsWouldOutliveTheirRetention(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let c = try open()
            try c.addStore(sampleStore("primary"))
            try c.addTenant(sampleTenant("acme"))
            for d in [0.0, 1, 2] { try run(c, .tick, nil, days: d) }
            try run(c, .tick, nil, days: 3, .failed)
            // Store cleaning: the newest of each store stays, whatever their order.
            try run(c, .storeClean, nil, days: 0, detail: #"{"store":"primary"}"#)
            try run(c, .storeClean, nil, days: 1, detail: #"{"store":"offsite"}"#)
            try run(c, .storeClean, nil, days: 2, detail: #"{"store":"primary"}"#)
            try run(c, .documentsBackup, "acme", days: 0)
            try run(c, .documentsBackup, "acme", days: 1)
            let cutoff = jan5.addingTimeInterval(10 * 86400)

            #expect(try c.pruneRuns(tenant: nil, endedBefore: cutoff, dryRun: true) == [.tick: 3, .storeClean: 1])
            #expect(try c.runs(tenant: nil, kind: .tick, limit: 100).count == 4, "a dry run deletes nothing")
            #expect(try c.pruneRuns(tenant: nil, endedBefore: cutoff, dryRun: false) == [.tick: 3, .storeClean: 1])
            // Kept: the newest passing tick (tick reads it) and each store's newest cleaning.
            let ticks = try c.runs(tenant: nil, kind: .tick, limit: 100)
            #expect(ticks.map(\.startedAt) == [jan5.addingTimeInterval(2 * 86400)])
            let cleans = try c.runs(tenant: nil, kind: .storeClean, limit: 100)
            #expect(Set(cleans.map(\.detail)) == [#"{"store":"primary"}"#, #"{"store":"offsite"}"#])
            #expect(cleans.count == 2)
            // The tenant's runs are not the installation's.
            #expect(try c.runs(tenant: "acme", kind: nil, limit: 100).count == 2)
            #expect(try c.pruneRuns(tenant: "acme", endedBefore: cutoff, dryRun: false) == [.documentsBackup: 1])
        }
    }
}
