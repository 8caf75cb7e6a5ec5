import Foundation
import TresorCatalog
import TresorCore
import TresorPostgres
import TresorRepository
import TresorStore

/// What `tresor check` found, per tenant.
public struct CheckResult: Codable, Sendable {
    public var tenants: [String: Checker.Report]
    public var outcome: Outcome
}

extension Installation {
    /// `tresor check [T] [--read-data | --read-data-subset PCT] [--store NAME]`: every tenant (or
    /// one), in its primary store or in `store` (an offsite copy). A store that refuses access
    /// (403) fails the check (exit 1 with the store's hint) instead of counting as damage.
    public func check(tenant: String?, readData: Checker.ReadData, store storeName: String? = nil) throws -> CheckResult {
        let names = try tenant.map { [try self.tenant($0).name] } ?? catalog.tenants().map(\.name)
        var reports: [String: Checker.Report] = [:]
        for name in names {
            let t = try self.tenant(name)
            let store = try openStore(for: t, storeName: storeName, create: false)
            guard try TenantRepository.exists(store: store, tenant: name) else {
                if tenant != nil {
                    throw CoreError.usage("tenant '\(name)' has no backups yet", hint: "tresor docs backup \(name)")
                }
                continue
            }
            var watch: AccessWatchingStore?
            let repo = try repository(for: t, storeName: storeName, create: false) { base in
                let w = AccessWatchingStore(base)
                watch = w
                return w
            }
            // Orphaned uploads are only certain when no backup of the tenant is running.
            if let lock = try? TenantLock(home: home, name: name) {
                withExtendedLifetime(lock) { removeOrphanUploads(tenant: t, store: store) }
            }
            let run = try catalog.startRun(kind: "check", tenant: name, at: clock.now())
            var report = try Checker(repository: repo).run(readData: readData)
            // Envelopes the repository opened without (damaged, moved in, foreign key) are problems.
            report.problems += repo.keyProblems.map { "key envelope \($0)" }
            try checkWAL(repo, readData: readData, into: &report)
            // An object the key may not read is an access failure, not damage.
            if let denied = watch?.denied { throw denied }
            try catalog.finishRun(id: run, at: clock.now(), status: report.isClean ? "ok" : "problem_found", detail: json(report))
            reports[name] = report
        }
        let clean = reports.values.allSatisfy(\.isClean)
        return CheckResult(tenants: reports, outcome: clean ? .ok : .problemFound)
    }

    /// Adds the WAL archive's findings (``WALCheck``) to a tenant's report.
    private func checkWAL(_ repo: TenantRepository, readData: Checker.ReadData, into report: inout Checker.Report) throws {
                let fraction: Double
        switch readData {
        case .none: fraction = 0
        case .all: fraction = 1
        case .subset(let percent): fraction = percent / 100
        }
        let wal = try WALCheck(archive: walArchive(repo)).run(backups: try baseBackups(repo), readFraction: fraction)
        report.walFiles = wal.walFiles
        report.walFilesRead = wal.walFilesRead
        report.bytesRead += wal.walBytesRead
        report.problems += wal.problems
    }

    /// `tresor tenant list`.
    public func listTenants() throws -> [TenantRecord] { try catalog.tenants() }

    /// `tresor store list`.
    public func listStores() throws -> [StoreRecord] { try catalog.stores() }
}
