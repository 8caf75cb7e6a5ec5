import Foundation
import TresorCatalog
import TresorCore
import TresorEvidence
import TresorPostgres
import TresorRepository
import TresorStore

/// Snapshots a drill or an export is reading right now: one file per reader,
/// `HOME/pins/<tenant>/<snapshot hex>.<pid>`. Retention keeps a pinned snapshot; a pin whose
/// process is gone no longer counts (a killed reader cannot hold data forever).
public struct SnapshotPins: Sendable {
    public let directory: URL

    public init(home: Home) { directory = home.root.appendingPathComponent("pins") }

    /// Pins `snapshot` of `tenant` for this process until the returned closure runs.
    public func pin(tenant: TenantID, snapshot: String) throws -> @Sendable () -> Void {
        let dir = directory.appendingPathComponent(tenant.rawValue)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("\(snapshot).\(getpid())")
        guard FileManager.default.createFile(atPath: file.path, contents: Data()) else {
            throw CoreError.failed("cannot write the pin \(file.path)")
        }
        let path = file.path
        return { _ = unlink(path) }
    }

    /// Snapshot ids pinned by a live process. A pins directory that exists and cannot be read
    /// is an error: retention must not run blind to readers.
    public func pinned(tenant: TenantID) throws -> [String] {
        let dir = directory.appendingPathComponent(tenant.rawValue)
        // No directory: nobody ever pinned a snapshot of this tenant.
        guard FileManager.default.fileExists(atPath: dir.path) else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        return names.compactMap { name in
            let parts = name.split(separator: ".")
            guard parts.count == 2, let pid = Int32(parts[1]) else { return nil }
            return kill(pid, 0) == 0 || errno == EPERM ? String(parts[0]) : nil
        }.sorted()
    }
}

/// What retention did (or, dry, would do) in one store.
public struct RetentionStoreResult: Codable, Sendable {
    public var store: String
    public var reachable: Bool
    public var error: String?
    public var prune: PruneResult?
    public var walDeleted = 0
    public var walBytesFreed: UInt64 = 0
    /// Dry runs only: the writes and deletes the store's ``DryRunStore`` held back, that is,
    /// what the real run would have sent to this store (absent from a real run's output).
    public var heldBack: DryRunStore.Skipped?
}

/// What retention did (or, dry, would do) to one data class that is kept for a period and then
/// deleted (job history; the download access log joins here).
public struct RetentionClassResult: Codable, Sendable {
    /// The class's name in output and evidence (`job-history`).
    public var name: String
    /// The policy key that sets the period, and its value.
    public var policyKey: String
    public var period: String
    /// Entries older than this go.
    public var cutoff: String
    public var deleted: Int
    /// Deleted entries per sub-kind (job history: per run kind).
    public var deletedByKind: [String: Int]
    public var bytesFreed: UInt64

    public init(name: String, policyKey: String, period: PolicyDuration, cutoff: Date, deleted: [String: Int], bytesFreed: UInt64 = 0) {
        self.name = name
        self.policyKey = policyKey
        self.period = period.description
        self.cutoff = TimeFormat.string(cutoff)
        self.deleted = deleted.values.reduce(0, +)
        self.deletedByKind = deleted
        self.bytesFreed = bytesFreed
    }
}

/// A data class retention keeps for the policy's period and deletes after, besides snapshots,
/// packs and WAL. `apply` runs under the tenant's lock inside `retention apply`; with `dryRun`
/// it only counts. Add a class by appending it to ``Installation/retentionDataClasses``.
public protocol RetentionDataClass: Sendable {
    var name: String { get }
    func apply(_ installation: Installation, tenant: TenantID, now: Date, dryRun: Bool) throws -> RetentionClassResult
}

/// Job history: the catalog's runs of the tenant older than `job_history.retention` (the newest
/// finished run of each kind stays, `tick` reads it), and with them the installation's own runs
/// (ticks, deletions, sweeps, the drill-age control, store cleaning), counted as
/// `installation:<kind>`: those belong to no tenant, so any tenant's retention run prunes them.
public struct JobHistoryRetention: RetentionDataClass {
    public var name: String { "job-history" }

    public init() {}

    public func apply(_ installation: Installation, tenant: TenantID, now: Date, dryRun: Bool) throws -> RetentionClassResult {
        let period = installation.policy.jobHistory.retention
        let cutoff = now.addingTimeInterval(-period.seconds)
        let deleted = try installation.catalog.pruneRuns(tenant: tenant.rawValue, endedBefore: cutoff, dryRun: dryRun)
        let own = try installation.catalog.pruneRuns(tenant: nil, endedBefore: cutoff, dryRun: dryRun)
        return RetentionClassResult(
            name: name, policyKey: "job_history.retention", period: period, cutoff: cutoff,
            deleted: Dictionary(
                uniqueKeysWithValues: deleted.map { ($0.key.rawValue, $0.value) }
                    + own.map { ("installation:" + $0.key.rawValue, $0.value) }))
    }
}

/// `tresor retention plan|apply`.
public struct RetentionResult: Codable, Sendable {
    public var tenant: String
    public var dryRun: Bool
    public var applied: Bool
    public var plan: RetentionPlan
    public var stores: [RetentionStoreResult]
    /// The other data classes (``Installation/retentionDataClasses``), in that order.
    public var classes: [RetentionClassResult] = []
    /// Bytes freed (or, dry, to be freed) per class in the primary store: `wal`, `packs`.
    public var bytesToFree: [String: UInt64]
    public var outcome: Outcome
    /// The download access log (`HOME/exports/access.jsonl`, one for all tenants): entries older
    /// than the policy's `access_log.retention` removed (or, dry, to be removed).
    public var accessLog: AccessLogFile.PruneResult?
    /// Why the access log could not be pruned (the run exits 1 saying so).
    public var accessLogError: String?
    /// Stores that could not be pruned (the run exits 1 naming them).
    public var failedStores: [String] { stores.filter { $0.error != nil }.map(\.store) }

    /// A store that could not be pruned, or an access log that could not be: the run failed,
    /// whatever else it did.
    var failed: Bool { !failedStores.isEmpty || accessLogError != nil }
}

extension Installation {
    /// The data classes `retention apply` keeps for a period, besides snapshots, packs and WAL.
    public var retentionDataClasses: [any RetentionDataClass] { [JobHistoryRetention()] }

    /// The retention plan of `tenant` from its primary store, the policy and the clock.
    public func retentionPlan(tenant id: TenantID) throws -> RetentionPlan {
        let tenant = try self.tenant(id)
        return try RetentionPlanner.plan(try retentionInput(repository: try repository(for: tenant, create: false), tenant: id))
    }

    func retentionInput(repository repo: TenantRepository, tenant: TenantID) throws -> RetentionInput {
        let snapshots = try repo.snapshots().map {
            RetentionInput.Snapshot(id: $0.id.hex, kind: $0.manifest.kind, time: $0.manifest.time, postgres: $0.manifest.postgres)
        }
        let wal = try repo.store.list(prefix: repo.layout.walPrefix).map {
            RetentionInput.WALObject(name: String($0.key.split(separator: "/").last ?? ""), size: $0.size)
        }
        return RetentionInput(
            now: TimeFormat.string(clock.now(), fractional: true),
            recoveryWindowSeconds: policy.postgres.recoveryWindow.seconds,
            dailySnapshotsKept: policy.documents.dailySnapshotsKept,
            snapshots: snapshots, wal: wal, inUse: try SnapshotPins(home: home).pinned(tenant: tenant),
            timeZone: policy.retention.timeZone)
    }

    /// `tresor retention apply T [--dry-run]`: plans from the primary store, then, under the
    /// tenant's lock (waited for up to `lockWait` seconds, so a running backup finishes first),
    /// plans again (a backup may have added a snapshot meanwhile) and prunes the primary and the
    /// offsite store alike. A store that fails leaves the others pruned; the result names it.
    public func applyRetention(tenant id: TenantID, dryRun: Bool, lockWait: Double = 3600) throws -> RetentionResult {
        let name = id.rawValue
        let tenant = try self.tenant(id)
        let lock = try waitForLock(id, seconds: lockWait)
        defer { withExtendedLifetime(lock) {} }
        try refuseIfDeleted(id)
        return try recordRun(.retention, tenant: id) { () throws -> RetentionResult in
            // A dry run opens its stores through a DryRunStore and runs the real path: the result
            // says what would go, and nothing in a store can change.
            let primary = try repository(for: tenant, create: false, dryRun: dryRun)
            let plan = try RetentionPlanner.plan(try retentionInput(repository: primary, tenant: id))
            let drop = Set(plan.dropSnapshots.compactMap { ObjectID(hex: $0.item) })
            let dropWAL = plan.dropWAL.compactMap { WALName($0.item) }
            var stores: [RetentionStoreResult] = []
            for storeName in [tenant.store] + (tenant.offsiteStore.map { [$0] } ?? []) {
                var r = RetentionStoreResult(store: storeName, reachable: true)
                do {
                    let repo = storeName == tenant.store ? primary : try repository(for: tenant, storeName: storeName, create: false, dryRun: dryRun)
                    let store: any Store = repo.store
                    guard !dryRun || store is DryRunStore else {
                        throw CoreError.failed("the dry run opened store '\(storeName)' without a DryRunStore; nothing was pruned there")
                    }
                    r.prune = try Pruner(repository: repo).prune(drop: drop, garbageFraction: policy.store.repackGarbageFraction)
                    let present = Dictionary(
                        try store.list(prefix: repo.layout.walPrefix).map { ($0.key, $0.size) },
                        uniquingKeysWith: { a, _ in a })
                    let keys = dropWAL.map { repo.layout.wal(timeline: $0.timelineHex, name: $0.description) }.filter { present[$0] != nil }
                    try store.deleteMany(keys)
                    r.walDeleted = keys.count
                    r.walBytesFreed = keys.reduce(0) { $0 + UInt64(present[$1] ?? 0) }
                    r.heldBack = (store as? DryRunStore)?.skipped
                } catch {
                    r.reachable = false
                    r.error = "\(error)"
                }
                stores.append(r)
            }
            let first = stores[0]
            let now = clock.now()
            let classes = try retentionDataClasses.map { try $0.apply(self, tenant: id, now: now, dryRun: dryRun) }
            var bytesToFree = ["wal": first.walBytesFreed, "packs": first.prune?.packBytesFreed ?? 0]
            for c in classes { bytesToFree[c.name] = c.bytesFreed }
            var result = RetentionResult(
                tenant: name, dryRun: dryRun, applied: !dryRun, plan: plan, stores: stores,
                classes: classes, bytesToFree: bytesToFree,
                outcome: plan.problems.isEmpty ? .ok : .problemFound)
            // The access log is kept for the policy's retention and no longer, whoever's entries
            // they are: any tenant's retention run prunes it.
            do {
                let log = try AccessLogFile.prune(
                    home, olderThan: clock.now().addingTimeInterval(-policy.accessLog.retention.seconds),
                    dryRun: dryRun)
                result.accessLog = log
                if log.unreadable > 0 { result.outcome = .problemFound }
            } catch {
                result.accessLogError = "\(error)"
            }
            if !dryRun {
                try recordEvidence(
                    kind: .retention, tenant: id,
                    payload: [
                        "now": .string(plan.now), "window_start": .string(plan.windowStart),
                        "snapshots_kept": .int(Int64(plan.keepSnapshots.count)),
                        "snapshots_deleted": .int(Int64(plan.dropSnapshots.count)),
                        "wal_kept": .int(Int64(plan.keepWAL.count)), "wal_deleted": .int(Int64(plan.dropWAL.count)),
                        "stores": .array(
                            stores.map { s in
                                .object([
                                    "store": .string(s.store), "ok": .bool(s.error == nil),
                                    "packs_deleted": .int(Int64(s.prune?.packsDeleted ?? 0)),
                                    "pack_bytes_freed": .int(Int64(s.prune?.packBytesFreed ?? 0)),
                                    "wal_bytes_freed": .int(Int64(s.walBytesFreed)),
                                ])
                            }),
                        "problems": .array(plan.problems.map { .string($0) }),
                        "classes": .array(
                            classes.map { c in
                                .object([
                                    "class": .string(c.name), "policy_key": .string(c.policyKey), "period": .string(c.period),
                                    "cutoff": .string(c.cutoff), "deleted": .int(Int64(c.deleted)),
                                    "deleted_by_kind": .object(c.deletedByKind.mapValues { .int(Int64($0)) }),
                                    "bytes_freed": .int(Int64(c.bytesFreed)),
                                ])
                            }),
                        "access_log_entries_deleted": .int(Int64(result.accessLog?.deleted ?? 0)),
                        "access_log_pruned": .bool(result.accessLog != nil),
                    ])
            }
            if result.failed { result.outcome = .problemFound }
            return result
        } status: {
            $0.failed ? .failed : RunStatus($0.outcome)
        } detail: {
            $0
        }
    }

    /// The tenant's lock, waiting while another run (a backup) holds it.
    func waitForLock(_ id: TenantID, seconds: Double) throws -> any Lock {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                return try locks.acquire(id.rawValue)
            } catch let e as CoreError where e.kind == .locked && Date() < deadline {
                usleep(200_000)
            }
        }
    }
}
