import Foundation
import Testing
import TresorCatalog
import TresorCore

/// Every test writes through one `SQLiteCatalog` and reads back through a second one opened on
/// the same file, so what is checked is what reached the disk.
@Suite("Catalog on SQLite and PostgreSQL")
struct SQLiteCatalogTests {
    // MARK: Stores

    @Test(arguments: CatalogBackend.allCases) func storesRoundTripSortedByName(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let zurich = sampleStore("zurich", region: "ch")
            let berlin = StoreRecord(
                name: "berlin", url: "s3://backups/t?endpoint=http://127.0.0.1:8333&region=eu",
                region: "eu-central", addedAt: mar9)
            do {
                let catalog = try open()
                try catalog.addStore(zurich)
                try catalog.addStore(berlin)
            }
            let reopened = try open()
            #expect(try reopened.stores() == [berlin, zurich])
            #expect(try reopened.store(named: "zurich") == zurich)
            #expect(try reopened.store(named: "paris") == nil)
        }
    }

    @Test(arguments: CatalogBackend.allCases) func duplicateStoreIsAUsageErrorAndKeepsTheFirst(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            let first = sampleStore("primary")
            try catalog.addStore(first)
            var second = sampleStore("primary", region: "us-east")
            second.url = "file:///elsewhere"

            let error = #expect(throws: CatalogError.self) { try catalog.addStore(second) }
            #expect(error?.code == .duplicate)
            #expect(error?.kind == .usage)
            #expect(error?.message == "store 'primary' already exists")
            #expect(error?.hint == "tresor store list")
            #expect(try open().stores() == [first])
        }
    }

    // MARK: Tenants

    @Test(arguments: CatalogBackend.allCases) func tenantsRoundTripWithEveryFieldSortedByName(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let full = TenantRecord(
                name: "acme", region: "eu-central", store: "primary", offsiteStore: "offsite",
                pgDSN: "host=127.0.0.1 port=5433 user=acme password=s3cret dbname=acme",
                docRoots: ["/srv/acme/uploads", "/srv/acme/a 'quoted' dir", "/srv/acme/zürich-ö", "/srv/acme/b"],
                createdAt: feb1, contractEnd: nov27, holdReason: "court order 2026-17")
            let minimal = sampleTenant("zeta")
            let middle = TenantRecord(
                name: "beta", region: "ch", store: "offsite", docRoots: ["/data/beta"],
                createdAt: mar9)
            do {
                let catalog = try open()
                try catalog.addStore(sampleStore("primary"))
                try catalog.addStore(sampleStore("offsite", region: "ch"))
                for tenant in [minimal, full, middle] { try catalog.addTenant(tenant) }
            }
            let reopened = try open()
            #expect(try reopened.tenants() == [full, middle, minimal])
            #expect(try reopened.tenant(named: "acme") == full)
            #expect(try reopened.tenant(named: "zeta")?.docRoots == [])
            #expect(try reopened.tenant(named: "nobody") == nil)
        }
    }

    @Test(arguments: CatalogBackend.allCases) func updateTenantReplacesEveryFieldAndTheDocRoots(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            var tenant = TenantRecord(
                name: "acme", region: "eu-central", store: "primary", pgDSN: "host=a",
                docRoots: ["/a", "/b", "/c"], createdAt: feb1)
            let other = TenantRecord(
                name: "other", region: "eu-central", store: "primary", docRoots: ["/other"],
                createdAt: feb1)
            do {
                let catalog = try open()
                try catalog.addStore(sampleStore("primary"))
                try catalog.addStore(sampleStore("offsite"))
                try catalog.addTenant(tenant)
                try catalog.addTenant(other)

                tenant.offsiteStore = "offsite"
                tenant.pgDSN = nil
                tenant.docRoots = ["/c", "/new"]
                tenant.contractEnd = nov27
                tenant.holdReason = "litigation"
                try catalog.updateTenant(tenant)
            }
            let reopened = try open()
            #expect(try reopened.tenant(named: "acme") == tenant)
            #expect(try reopened.tenant(named: "other") == other)

            // And back: optional fields can be cleared again.
            tenant.contractEnd = nil
            tenant.holdReason = nil
            tenant.docRoots = []
            try reopened.updateTenant(tenant)
            #expect(try open().tenant(named: "acme") == tenant)
        }
    }

    @Test(arguments: CatalogBackend.allCases) func duplicateTenantIsAUsageErrorAndKeepsTheFirst(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            try catalog.addStore(sampleStore("primary"))
            var first = sampleTenant("acme")
            first.docRoots = ["/first"]
            try catalog.addTenant(first)
            var second = sampleTenant("acme")
            second.docRoots = ["/second", "/third"]

            let error = #expect(throws: CatalogError.self) { try catalog.addTenant(second) }
            #expect(error?.code == .duplicate)
            #expect(error?.kind == .usage)
            #expect(error?.message == "tenant 'acme' already exists")
            #expect(try open().tenants() == [first])
        }
    }

    @Test(arguments: CatalogBackend.allCases) func updatingAMissingTenantIsAUsageErrorAndCreatesNothing(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            try catalog.addStore(sampleStore("primary"))

            let error = #expect(throws: CatalogError.self) { try catalog.updateTenant(sampleTenant("ghost")) }
            #expect(error?.code == .notFound)
            #expect(error?.kind == .usage)
            #expect(error?.message == "tenant 'ghost' does not exist")
            #expect(try catalog.tenants().isEmpty)
        }
    }

    @Test(arguments: CatalogBackend.allCases) func tenantOnAnUnknownStoreIsAUsageErrorNamingTheStore(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            try catalog.addStore(sampleStore("primary"))
            var tenant = sampleTenant("acme")
            tenant.offsiteStore = "nowhere"
            tenant.docRoots = ["/srv/acme"]

            let error = #expect(throws: CatalogError.self) { try catalog.addTenant(tenant) }
            #expect(error?.code == .notFound)
            #expect(error?.kind == .usage)
            #expect(error?.message == "store 'nowhere' does not exist")
            #expect(try catalog.tenants().isEmpty)

            tenant.offsiteStore = nil
            try catalog.addTenant(tenant)
            tenant.store = "missing"
            let updateError = #expect(throws: CatalogError.self) { try catalog.updateTenant(tenant) }
            #expect(updateError?.message == "store 'missing' does not exist")
            #expect(try catalog.tenant(named: "acme")?.store == "primary")
        }
    }

    @Test(arguments: CatalogBackend.allCases) func errorsNeverShowTheDSN(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            try catalog.addStore(sampleStore("primary"))
            var tenant = sampleTenant("acme")
            tenant.pgDSN = "postgresql://acme:hunter2@db.internal/acme"
            try catalog.addTenant(tenant)
            let error = #expect(throws: CatalogError.self) { try catalog.addTenant(tenant) }
            #expect(error.map { !"\($0) \($0.hint ?? "")".contains("hunter2") } == true)
        }
    }

    // MARK: Region approvals

    @Test(arguments: CatalogBackend.allCases) func regionApprovalsRoundTripOldestFirstPerTenant(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let later = RegionApproval(
                tenant: "acme", store: "us", approvedBy: "dpo@example.com",
                reason: "customer asked for a US replica", approvedAt: nov27)
            let earlier = RegionApproval(
                tenant: "acme", store: "us", approvedBy: "ciso", reason: "migration",
                approvedAt: mar9)
            let otherTenant = RegionApproval(
                tenant: "beta", store: "us", approvedBy: "ciso", reason: "dr test",
                approvedAt: feb1)
            do {
                let catalog = try open()
                try catalog.addStore(sampleStore("primary"))
                try catalog.addStore(sampleStore("us", region: "us-east"))
                try catalog.addTenant(sampleTenant("acme"))
                try catalog.addTenant(sampleTenant("beta"))
                for approval in [later, otherTenant, earlier] { try catalog.addRegionApproval(approval) }
            }
            let reopened = try open()
            #expect(try reopened.regionApprovals(tenant: "acme") == [earlier, later])
            #expect(try reopened.regionApprovals(tenant: "beta") == [otherTenant])
            #expect(try reopened.regionApprovals(tenant: "nobody") == [])
        }
    }

    @Test(arguments: CatalogBackend.allCases) func regionApprovalNeedsAKnownTenantAndStore(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            try catalog.addStore(sampleStore("primary"))
            try catalog.addTenant(sampleTenant("acme"))

            let noTenant = #expect(throws: CatalogError.self) {
                try catalog.addRegionApproval(
                    RegionApproval(
                        tenant: "ghost", store: "primary", approvedBy: "me",
                        reason: "r", approvedAt: mar9))
            }
            #expect(noTenant?.message == "tenant 'ghost' does not exist")
            #expect(noTenant?.kind == .usage)

            let noStore = #expect(throws: CatalogError.self) {
                try catalog.addRegionApproval(
                    RegionApproval(
                        tenant: "acme", store: "mars", approvedBy: "me",
                        reason: "r", approvedAt: mar9))
            }
            #expect(noStore?.message == "store 'mars' does not exist")
            #expect(noStore?.kind == .usage)
            #expect(try catalog.regionApprovals(tenant: "acme").isEmpty)
        }
    }

    // MARK: Runs

    @Test(arguments: CatalogBackend.allCases) func runsRoundTripNewestFirstWithLimitAndFilters(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            var ids: [String: Int64] = [:]
            do {
                let catalog = try open(worker: "w1:42")
                ids["tick"] = try catalog.startRun(kind: .tick, tenant: nil, at: jan5)
                ids["acme-docs"] = try catalog.startRun(kind: .documentsBackup, tenant: "acme", at: feb1)
                ids["beta-docs"] = try catalog.startRun(kind: .documentsBackup, tenant: "beta", at: mar9)
                ids["acme-drill"] = try catalog.startRun(kind: .drill, tenant: "acme", at: nov27)
                try catalog.finishRun(id: ids["acme-docs"]!, at: mar9, status: .ok, detail: #"{"files":12,"bytes":4096}"#)
                try catalog.finishRun(id: ids["tick"]!, at: feb1, status: .failed, detail: #"{"error":"store down"}"#)
            }
            #expect(Set(ids.values).count == 4)

            let catalog = try open()
            let all = try catalog.runs(tenant: nil, kind: nil, limit: 10)
            #expect(all.map(\.id) == [ids["acme-drill"], ids["beta-docs"], ids["acme-docs"], ids["tick"]].map { $0! })
            #expect(
                all[2]
                    == RunRecord(
                        id: ids["acme-docs"]!, tenant: "acme", kind: .documentsBackup, startedAt: feb1,
                        endedAt: mar9, status: .ok, detail: #"{"files":12,"bytes":4096}"#, worker: "w1:42"))
            #expect(
                all[3]
                    == RunRecord(
                        id: ids["tick"]!, tenant: nil, kind: .tick, startedAt: jan5, endedAt: feb1,
                        status: .failed, detail: #"{"error":"store down"}"#, worker: "w1:42"))
            #expect(
                all[0]
                    == RunRecord(
                        id: ids["acme-drill"]!, tenant: "acme", kind: .drill, startedAt: nov27,
                        endedAt: nil, status: RunRecord.runningStatus, detail: "{}", worker: "w1:42"))
            #expect(RunRecord.runningStatus.rawValue == "running")

            #expect(try catalog.runs(tenant: nil, kind: nil, limit: 2).map(\.id) == [ids["acme-drill"]!, ids["beta-docs"]!])
            #expect(try catalog.runs(tenant: "acme", kind: nil, limit: 10).map(\.id) == [ids["acme-drill"]!, ids["acme-docs"]!])
            #expect(try catalog.runs(tenant: nil, kind: .documentsBackup, limit: 10).map(\.id) == [ids["beta-docs"]!, ids["acme-docs"]!])
            #expect(try catalog.runs(tenant: "acme", kind: .documentsBackup, limit: 10).map(\.id) == [ids["acme-docs"]!])
            #expect(try catalog.runs(tenant: "acme", kind: .documentsBackup, limit: 0).isEmpty)
            #expect(try catalog.runs(tenant: nil, kind: nil, limit: -1).isEmpty)
            #expect(try catalog.runs(tenant: "nobody", kind: nil, limit: 10).isEmpty)
        }
    }

    @Test(arguments: CatalogBackend.allCases) func runsStartedAtTheSameInstantAreOrderedNewestIdFirst(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            let first = try catalog.startRun(kind: .tick, tenant: nil, at: mar9)
            let second = try catalog.startRun(kind: .tick, tenant: nil, at: mar9)
            #expect(try catalog.runs(tenant: nil, kind: nil, limit: 5).map(\.id) == [second, first])
        }
    }

    @Test(arguments: CatalogBackend.allCases) func finishingAnUnknownRunIsANotFoundError(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            let id = try catalog.startRun(kind: .tick, tenant: nil, at: jan5)
            let error = #expect(throws: CatalogError.self) {
                try catalog.finishRun(id: id + 1, at: feb1, status: .ok, detail: "{}")
            }
            #expect(error?.code == .notFound)
            #expect(error?.message == "run \(id + 1) does not exist")
            #expect(try catalog.runs(tenant: nil, kind: nil, limit: 5).map(\.status) == [.running])
        }
    }

    @Test(arguments: CatalogBackend.allCases) func concurrentRunsFromManyThreadsAndTwoConnectionsAreAllKept(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            // Two catalogs on one file: threads contend for each one's lock, and the two
            // connections contend for the file's write lock (busy timeout, WAL).
            let catalogs = [try open(), try open()]
            let sink = ErrorSink()
            DispatchQueue.concurrentPerform(iterations: 200) { i in
                sink.record {
                    let catalog = catalogs[i % 2]
                    let start = Date(timeIntervalSince1970: 1_767_603_600 + Double(i))
                    let id = try catalog.startRun(kind: .documentsBackup, tenant: "t\(i % 7)", at: start)
                    try catalog.finishRun(id: id, at: start.addingTimeInterval(1), status: .ok, detail: #"{"i":\#(i)}"#)
                }
            }
            #expect(sink.errors == [])

            let runs = try open().runs(tenant: nil, kind: nil, limit: 1000)
            #expect(runs.count == 200)
            #expect(Set(runs.map(\.id)).count == 200)
            #expect(runs.allSatisfy { $0.status == .ok && $0.endedAt == $0.startedAt.addingTimeInterval(1) })
            #expect(Set(runs.map(\.detail)) == Set((0..<200).map { #"{"i":\#($0)}"# }))
            #expect(runs.map(\.startedAt) == runs.map(\.startedAt).sorted(by: >))
        }
    }

    @Test(arguments: CatalogBackend.allCases) func concurrentTenantWritesOnOneCatalogDoNotInterleaveTheirTransactions(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            try catalog.addStore(sampleStore("primary"))
            let sink = ErrorSink()
            DispatchQueue.concurrentPerform(iterations: 40) { i in
                sink.record {
                    var tenant = sampleTenant(String(format: "t%02d", i))
                    tenant.docRoots = (0..<5).map { "/srv/t\(i)/\($0)" }
                    try catalog.addTenant(tenant)
                    tenant.holdReason = "hold \(i)"
                    tenant.docRoots.reverse()
                    try catalog.updateTenant(tenant)
                }
            }
            #expect(sink.errors == [])

            let tenants = try open().tenants()
            #expect(tenants.map(\.name) == (0..<40).map { String(format: "t%02d", $0) })
            for (i, tenant) in tenants.enumerated() {
                #expect(tenant.holdReason == "hold \(i)")
                #expect(tenant.docRoots == (0..<5).reversed().map { "/srv/t\(i)/\($0)" })
            }
        }
    }

    // MARK: Dates

    @Test(arguments: CatalogBackend.allCases) func datesKeepMillisecondsAndRoundFinerParts(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let cases: [(stored: Date, readBack: Date)] = [
                (nov27, nov27),
                (Date(timeIntervalSince1970: 1_795_773_600.1236), Date(timeIntervalSince1970: 1_795_773_600.124)),
                (Date(timeIntervalSince1970: 1_795_773_600.0004), Date(timeIntervalSince1970: 1_795_773_600)),
                (Date(timeIntervalSince1970: -86_400.001), Date(timeIntervalSince1970: -86_400.001)),  // before 1970
                (Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 0)),
            ]
            do {
                let catalog = try open()
                for (index, date) in cases.enumerated() {
                    try catalog.addStore(sampleStore("s\(index)", addedAt: date.stored))
                }
            }
            let reopened = try open()
            for (index, date) in cases.enumerated() {
                let read = try #require(try reopened.store(named: "s\(index)")).addedAt
                #expect(read == date.readBack, "case \(index): \(read.timeIntervalSince1970)")
            }
        }
    }
}

@Suite("Catalog values that are not strings")
struct CatalogTypedValueTests {
    @Test(arguments: CatalogBackend.allCases) func aTenantNameThatIsNoTenantIDIsRefused(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            try catalog.addStore(sampleStore("primary"))
            for bad in ["Acme", "-acme", "a/b", "", String(repeating: "a", count: 65), "acme corp"] {
                let error = #expect(throws: CatalogError.self) { try catalog.addTenant(sampleTenant(bad)) }
                #expect(error?.code == .invalid, "\(bad)")
                #expect(error?.kind == .usage)
            }
            #expect(try catalog.tenants().isEmpty)
            try catalog.addTenant(sampleTenant("acme_2-x"))
            #expect(try catalog.tenants().map(\.name) == ["acme_2-x"])
        }
    }

    @Test(arguments: CatalogBackend.allCases) func runKindsAndStatusesGivenAsTextMustBeKnown(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let catalog = try open()
            let start = Date(timeIntervalSince1970: 1_000)
            let error = #expect(throws: CatalogError.self) { try catalog.startRun(kind: "docs_backup", tenant: "acme", at: start) }
            #expect(error?.code == .invalid)
            let id = try catalog.startRun(kind: "docs-backup", tenant: "acme", at: start)
            #expect(throws: CatalogError.self) { try catalog.finishRun(id: id, at: start, status: "done", detail: "{}") }
            try catalog.finishRun(id: id, at: start, status: "problem_found", detail: "{}")
            let runs = try catalog.runs(tenant: "acme", kind: .documentsBackup, limit: 5)
            #expect(runs.map(\.status) == [.problemFound])
        }
    }
}
