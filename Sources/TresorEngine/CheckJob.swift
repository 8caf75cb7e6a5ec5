import Foundation
import TresorCatalog
import TresorCore
import TresorPostgres
import TresorRepository

/// What `tresor check` found, per tenant.
public struct CheckResult: Codable, Sendable {
    public var tenants: [String: Checker.Report]
    public var outcome: Outcome
}

extension Installation {
    /// `tresor check [T] [--read-data | --read-data-subset PCT]`: every tenant (or one).
    public func check(tenant: String?, readData: Checker.ReadData) throws -> CheckResult {
        let names = try tenant.map { [try self.tenant($0).name] } ?? catalog.tenants().map(\.name)
        var reports: [String: Checker.Report] = [:]
        for name in names {
            let t = try self.tenant(name)
            let store = try openStore(for: t, create: false)
            guard try TenantRepository.exists(store: store, tenant: name) else {
                if tenant != nil {
                    throw CoreError.usage("tenant '\(name)' has no backups yet", hint: "tresor docs backup \(name)")
                }
                continue
            }
            let repo = try repository(for: t, create: false)
            // Orphaned uploads are only certain when no backup of the tenant is running.
            if let lock = try? TenantLock(home: home, name: name) {
                withExtendedLifetime(lock) { removeOrphanUploads(tenant: t, store: store) }
            }
            let run = try catalog.startRun(kind: "check", tenant: name, at: clock.now())
            var report = try Checker(repository: repo).run(readData: readData)
            // Envelopes the repository opened without (damaged, moved in, foreign key) are problems.
            report.problems += repo.keyProblems.map { "key envelope \($0)" }
            try checkWAL(repo, readData: readData, into: &report)
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
