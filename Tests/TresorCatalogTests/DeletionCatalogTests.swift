import Foundation
import Testing
import TresorCatalog
import TresorCore

@Suite("Catalog deletions")
struct DeletionCatalogTests {
    @Test func aRerunOfBeginDeletionWouldRestartACrashedDeletionFromScratch() throws {
        try withCatalogPath { path in
            let catalog = try SQLiteCatalog(path: path)
            _ = try catalog.beginDeletion(tenant: "acme", plan: "{\"a\":1}", at: jan5)
            try catalog.updateDeletion(tenant: "acme", step: .keysDestroyed, report: "{\"keys\":1}", finishedAt: nil)
            let again = try catalog.beginDeletion(tenant: "acme", plan: "{\"other\":2}", at: mar9)
            #expect(again.step == .keysDestroyed)
            #expect(again.plan == "{\"a\":1}")
            #expect(again.startedAt == jan5)
            let reopened = try SQLiteCatalog(path: path)
            #expect(try reopened.deletion(tenant: "acme")?.report == "{\"keys\":1}")
            #expect(try reopened.deletions().map(\.tenant) == ["acme"])
        }
    }

    @Test func purgingATenantLeavesNoRowNamingItAndSparesOthers() throws {
        try withCatalogPath { path in
            let catalog = try SQLiteCatalog(path: path)
            try catalog.addStore(sampleStore("primary"))
            var acme = sampleTenant("acme")
            acme.docRoots = ["/srv/acme"]
            try catalog.addTenant(acme)
            try catalog.addTenant(sampleTenant("acme2"))
            try catalog.addRegionApproval(RegionApproval(tenant: "acme", store: "primary", approvedBy: "x", reason: "y", approvedAt: jan5))
            _ = try catalog.startRun(kind: .documentsBackup, tenant: "acme", at: jan5)
            _ = try catalog.startRun(kind: .documentsBackup, tenant: "acme2", at: jan5)
            #expect(try catalog.tenantRowCount("acme") == 4)
            #expect(try catalog.purgeTenantRows("acme") == 4)
            #expect(try catalog.tenantRowCount("acme") == 0)
            #expect(try catalog.tenant(named: "acme") == nil)
            #expect(try catalog.tenantRowCount("acme2") == 2)
            #expect(try catalog.purgeTenantRows("acme") == 0)
        }
    }

    @Test func updatingAnUnrecordedDeletionIsNotFound() throws {
        try withCatalogPath { path in
            let catalog = try SQLiteCatalog(path: path)
            let e = #expect(throws: CatalogError.self) {
                try catalog.updateDeletion(tenant: "ghost", step: .certified, report: "{}", finishedAt: jan5)
            }
            #expect(e?.code == .notFound)
        }
    }
}
