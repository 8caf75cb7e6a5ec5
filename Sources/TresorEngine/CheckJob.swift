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
    /// one), in its primary store or in `store` (an offsite copy).
    ///
    /// Reads the store itself, never the local cache of index and snapshot objects: a check that
    /// trusted the cache would pass while the store's copy is damaged. Damage anywhere (config,
    /// key envelopes, index, snapshots, packs, WAL) is a finding and checking goes on. A store
    /// that refuses access (403) or cannot be reached fails the check (exit 1) instead of
    /// counting as damage.
    ///
    /// `progress`, when given, hears each tenant's pack reads (tenant, packs read, bytes read, bytes to read).
    public func check(
        tenant: TenantID?, readData: Checker.ReadData, store storeName: String? = nil,
        progress: (@Sendable (String, Int, UInt64, UInt64) -> Void)? = nil
    ) throws -> CheckResult {
        let ids = try tenant.map { [$0] } ?? tenantIDs()
        var reports: [String: Checker.Report] = [:]
        for id in ids {
            let name = id.rawValue
            let t = try self.tenant(id)
            let store = try openStore(for: t, storeName: storeName, create: false)
            guard try TenantRepository.exists(store: store, tenant: id) else {
                if tenant != nil {
                    // The backup that fits the tenant: a database-only tenant has no document roots.
                    throw CoreError.usage(
                        "tenant '\(name)' has no backups yet",
                        hint: t.docRoots.isEmpty && t.pgDSN != nil ? "tresor pg basebackup \(name)" : "tresor docs backup \(name)")
                }
                continue
            }
            // Orphaned uploads are only certain when no backup of the tenant is running (on any
            // host, in fleet mode: the lock is then a catalog lease).
            if let lock = try? locks.acquire(name) {
                withExtendedLifetime(lock) { removeOrphanUploads(tenant: id, store: store) }
            }
            reports[name] = try run(
                Job(.check, tenant: id) { [self] in
                    let watch = AccessWatchingStore(store)
                    var tenantProgress: (@Sendable (Int, UInt64, UInt64) -> Void)?
                    if let progress { tenantProgress = { packs, bytes, total in progress(name, packs, bytes, total) } }
                    var report = try checkTenant(id, store: watch, readData: readData, progress: tenantProgress)
                    // An object the key may not read is an access failure, not damage.
                    if let denied = watch.denied { throw denied }
                    lostSnapshotCoverage(tenant: id, into: &report)
                    return report
                })
        }
        let clean = reports.values.allSatisfy(\.isClean)
        return CheckResult(tenants: reports, outcome: clean ? .ok : .problemFound)
    }

    private func checkTenant(
        _ id: TenantID, store: any Store, readData: Checker.ReadData,
        progress: (@Sendable (Int, UInt64, UInt64) -> Void)?
    ) throws -> Checker.Report {
        let layout = RepositoryLayout(tenant: id)
        let masters = [try masterKey()] + (try previousMasterKeys())
        var damagedKeys: [String: String] = [:]
        func authenticate(_ key: String, _ body: ([UInt8]) throws -> Void) throws {
            do {
                try body(try store.get(key))
            } catch  where RepositoryError.isDamage(error) {
                damagedKeys[key] = RepositoryError.describe(error)
            }
        }
        var config: TenantConfig?
        try authenticate(layout.config) {
            try ObjectAuthenticator.authenticateConfig($0, layout: layout)
            config = try JSONDecoder().decode(TenantConfig.self, from: Data($0))
        }
        let named = config?.dataKey
        var dataKeys: [String: [UInt8]] = [:]
        for o in try store.list(prefix: layout.keysPrefix) {
            try authenticate(o.key) {
                let key = try ObjectAuthenticator.authenticateEnvelope(key: o.key, bytes: $0, layout: layout, masters: masters)
                dataKeys[KeyEnvelope.fingerprint(dataKey: key)] = key
            }
        }
        let fingerprints = Set(dataKeys.keys)
        // A version 3 config carries a MAC under its data key: a flipped digit of a chunker size
        // or of the creation time, which leaves a valid config, shows here.
        if let config, let mac = config.mac, let named, let key = dataKeys[named], mac != config.computeMAC(dataKey: key) {
            damagedKeys[layout.config] = "\(layout.config) fails authentication (its MAC under the data key): damaged"
        }
        // Every envelope opens, yet none holds the key the config names: the config's name of
        // it is what changed (with no envelope at all the tenant was shredded, which opening reports).
        if let named, !fingerprints.isEmpty, !fingerprints.contains(named), damagedKeys.isEmpty {
            damagedKeys[layout.config] = "\(layout.config) names data key \(named), which no key envelope holds: damaged"
        }
        let repo: TenantRepository
        do {
            repo = try TenantRepository.open(
                store: store, tenant: id, master: masters[0], previousMasters: Array(masters.dropFirst()),
                policy: policy.backup, clock: clock, create: false)
        } catch let e as RepositoryError where !damagedKeys.isEmpty || e.code == .corrupt {
            // The damaged config or envelope is named above; nothing else can be read without it.
            var report = Checker.Report()
            report.damagedKeys = damagedKeys
            report.problems.append("the repository cannot be opened (\(e.message)): nothing else of it was checked")
            return report
        }
        var checker = Checker(repository: repo)
        checker.progress = progress
        var report = try checker.run(readData: readData)
        report.damagedKeys = damagedKeys
        // Envelopes the repository opened without that are not damaged (one wrapping another data
        // key than the config names, left by a creator that lost a race) are problems too.
        report.problems += repo.keyProblems.filter { p in !damagedKeys.keys.contains { p.hasPrefix($0 + ":") } }
            .map { "key envelope \($0)" }
        try checkWAL(repo, readData: readData, into: &report)
        return report
    }

    /// Adds the WAL archive's findings (``WALCheck``) to a tenant's report.
    private func checkWAL(_ repo: TenantRepository, readData: Checker.ReadData, into report: inout Checker.Report) throws {
        let fraction: Double
        switch readData {
        case .none: fraction = 0
        case .all: fraction = 1
        case .subset(let percent): fraction = percent / 100
        }
        // Damaged snapshot objects are already named; the WAL check works from the readable ones.
        let backups = try repo.snapshotsReportingDamage().snapshots.compactMap { s -> BaseBackupRef? in
            guard s.manifest.kind == .postgresBase, let info = s.manifest.postgres else { return nil }
            return try BaseBackupRef(id: s.id, info: info)
        }
        let wal = try WALCheck(archive: walArchive(repo)).run(backups: backups, readFraction: fraction)
        report.walFiles = wal.walFiles
        report.walFilesRead = wal.walFilesRead
        report.bytesRead += wal.walBytesRead
        report.problems += wal.problems
    }

    /// Fills in what each damaged snapshot covered from the catalog's record of the run that made
    /// it (time, kind, roots, file count), so the operator knows what is lost. A snapshot the
    /// catalog has no record of keeps these empty, and the report says so.
    func lostSnapshotCoverage(tenant: TenantID, into report: inout Checker.Report) {
        guard !report.damagedSnapshots.isEmpty else { return }
        let runs: [RunRecord]
        do {
            runs = try catalog.runs(tenant: tenant.rawValue, kind: nil, limit: 1_000_000)
        } catch {
            report.problems.append("the catalog's runs could not be read to say what the damaged snapshots covered: \(error)")
            return
        }
        var byID: [String: [String: Any]] = [:]
        for r in runs {
            // Results of backup runs carry a "snapshot" summary (id, time, kind, roots, files).
            // Most runs have none; a detail that is not JSON counts as one without a summary. Nothing
            // is lost by that: the damaged snapshot is already a problem (exit 3) and is printed with
            // "the catalog has no record of what it covered".
            guard let data = r.detail.data(using: .utf8),
                let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                let summary = object["snapshot"] as? [String: Any], let id = summary["id"] as? String
            else { continue }
            byID[id] = summary
        }
        for i in report.damagedSnapshots.indices {
            let id = String(report.damagedSnapshots[i].key.split(separator: "/").last ?? "")
            guard let s = byID[id] else { continue }
            report.damagedSnapshots[i].time = s["time"] as? String
            if let text = s["kind"] as? String {
                do {
                    report.damagedSnapshots[i].kind = try SnapshotKind(parsing: text)
                } catch {
                    report.problems.append("the catalog's record of snapshot \(id) names \(RepositoryError.describe(error))")
                }
            }
            report.damagedSnapshots[i].roots = s["roots"] as? [String]
            report.damagedSnapshots[i].files = s["files"] as? Int
        }
    }

    /// `tresor tenant list`.
    public func listTenants() throws -> [TenantRecord] { try catalog.tenants() }

    /// Every tenant's id, in the catalog's order: what a command given no tenant works on.
    public func tenantIDs() throws -> [TenantID] { try catalog.tenants().map { try $0.id } }

    /// `tresor store list`.
    public func listStores() throws -> [StoreRecord] { try catalog.stores() }
}
