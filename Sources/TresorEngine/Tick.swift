import Foundation
import TresorCatalog
import TresorCore

/// One job `tresor tick` found due, and what became of it.
public struct TickJob: Codable, Sendable, Equatable {
    public enum Result: String, Codable, Sendable {
        case ok
        case problemFound = "problem_found"
        case failed
        /// Another process (a second tick, an operator's command) holds the lock: it is doing it.
        case locked
    }

    /// The tenant, or for store jobs `nil` (see `store`).
    public var tenant: String?
    public var store: String?
    /// The run kind (`docs-backup`, `pg-basebackup`, `replicate`, `drill-control`, `store-clean`).
    public var kind: String
    public var result: Result
    public var error: String?
}

/// What one `tresor tick` did.
public struct TickResult: Codable, Sendable {
    public var asOf: Date
    public var tenants: Int
    public var concurrency: Int
    /// Every due job, in the order tenants are sorted (store jobs last).
    public var jobs: [TickJob]
    /// Jobs issue 14 names that this tick does not run yet (their capabilities are being built):
    /// see ``TickHooks``.
    public var notYetScheduled: [String]
    public var metrics: MetricsResult?

    public var failed: Int { jobs.filter { $0.result == .failed }.count }
    public var outcome: Outcome {
        jobs.contains { $0.result == .problemFound } || metrics?.outcome == .problemFound ? .problemFound : .ok
    }
}

/// The places where the jobs other capabilities bring plug into `tick`: each returns its due
/// jobs for a tenant as closures. Until a capability registers here, its name is listed in
/// ``TickResult/notYetScheduled`` so an operator sees the gap rather than assuming it runs.
public enum TickHooks {
    /// Drills (spread over the month by a stable hash of the tenant), retention, deletion,
    /// sweeps: not scheduled by this tick yet.
    public static let notYetScheduled = ["drills", "retention", "deletion", "sweeps", "pg-stream supervision"]
}

extension Installation {
    /// The start of the policy slot `now` falls in: intervals are aligned to the Unix epoch
    /// (UTC), so a daily job is due once per UTC day whatever time the last one ran, and after
    /// downtime it runs once, not once per missed slot.
    static func slotStart(_ now: Date, interval: PolicyDuration) -> Date {
        let s = max(interval.seconds, 1)
        return Date(timeIntervalSince1970: (now.timeIntervalSince1970 / s).rounded(.down) * s)
    }

    /// `tresor tick`: runs every job that is due according to the policies and the catalog.
    ///
    /// A job is due when no run of its kind (for that tenant, or store) ended `ok` or
    /// `problem_found` since the start of the current slot of its interval: document backups
    /// per `documents.backup_interval`, base backups per `postgres.base_backup_interval` (tenants
    /// with a DSN), replication when a backup finished after the last replication (tenants with
    /// an offsite store), and daily the drill-age control and `store clean` of every store. A
    /// failed run leaves the job due, so the next tick retries it.
    ///
    /// Tenants are worked on by `policy.tickConcurrency` threads, one tenant's jobs one after
    /// another; each job takes the tenant's lock, and a lock another process holds makes the job
    /// `locked` (that process is doing it), not failed. `metricsOut`, when given, is written last.
    public func tick(metricsOut: String? = nil) throws -> TickResult {
        let now = clock.now()
        let tickRun = try catalog.startRun(kind: .tick, tenant: nil, at: now)
        do {
            let result = try tickBody(now: now, metricsOut: metricsOut)
            try catalog.finishRun(id: tickRun, at: clock.now(), status: result.failed > 0 ? .failed : RunStatus(result.outcome),
                                  detail: json(["jobs": result.jobs.count, "failed": result.failed]))
            return result
        } catch {
            try? catalog.finishRun(id: tickRun, at: clock.now(), status: .failed, detail: json(["error": "\(error)"]))
            throw error
        }
    }

    private func tickBody(now: Date, metricsOut: String?) throws -> TickResult {
        // The newest finished (ok or problem found) run per tenant-or-store and kind, in one read.
        var latest: [String: Date] = [:]
        for run in try catalog.runs(tenant: nil, kind: nil, limit: Int(Int32.max))
        where run.status == .ok || run.status == .problemFound {
            let key = Self.doneKey(kind: run.kind.rawValue, owner: run.tenant ?? Self.storeOf(run) ?? "")
            if latest[key] == nil { latest[key] = run.startedAt }
        }
        let lastDone = latest
        @Sendable func due(_ kind: RunKind, _ owner: String, _ interval: PolicyDuration) -> Bool {
            guard let last = lastDone[Self.doneKey(kind: kind.rawValue, owner: owner)] else { return true }
            return last < Self.slotStart(now, interval: interval)
        }

        let tenants = try catalog.tenants()
        let results = Locked([[TickJob]](repeating: [], count: tenants.count))
        let next = Locked(0)
        let threads = max(1, min(policy.tickConcurrency, tenants.count))
        runOnThreads(threads, name: "tick") { _ in
            while true {
                let i = next.withLock { n -> Int in defer { n += 1 }; return n }
                guard i < tenants.count else { return }
                let t = tenants[i]
                var jobs: [TickJob] = []
                var backedUp = false
                if !t.docRoots.isEmpty, due(.documentsBackup, t.name, self.policy.documents.backupInterval) {
                    jobs.append(self.tickJob(tenant: t.name, kind: .documentsBackup) { try self.backupDocuments(tenant: t.name).outcome })
                    backedUp = backedUp || jobs.last?.result == .ok || jobs.last?.result == .problemFound
                }
                if t.pgDSN != nil, due(.postgresBaseBackup, t.name, self.policy.postgres.baseBackupInterval) {
                    jobs.append(self.tickJob(tenant: t.name, kind: .postgresBaseBackup) { _ = try self.basebackupPostgres(tenant: t.name); return .ok })
                    backedUp = backedUp || jobs.last?.result == .ok
                }
                if t.offsiteStore != nil {
                    let lastBackup = [RunKind.documentsBackup, .postgresBaseBackup].compactMap { lastDone[Self.doneKey(kind: $0.rawValue, owner: t.name)] }.max()
                    let lastReplication = lastDone[Self.doneKey(kind: RunKind.replicate.rawValue, owner: t.name)]
                    if backedUp || (lastBackup != nil && (lastReplication == nil || lastReplication! < lastBackup!)) {
                        jobs.append(self.tickJob(tenant: t.name, kind: .replicate) { try self.replicate(tenant: t.name, to: nil).outcome })
                    }
                }
                results.withLock { $0[i] = jobs }
            }
        }
        var jobs = results.current.flatMap { $0 }

        // Installation-wide jobs, daily, each under its own lock so two ticks do not both run it.
        let day = PolicyDuration(seconds: 86400)
        if due(.drillControl, "", day) {
            jobs.append(tickJob(tenant: nil, kind: .drillControl, lockName: "tick-drill-control") { try self.drillControlRun() })
        }
        for store in try catalog.stores() where due(.storeClean, store.name, day) {
            var job = tickJob(tenant: nil, kind: .storeClean, lockName: "tick-store-clean-\(store.name)") { try self.cleanStore(name: store.name).outcome }
            job.store = store.name
            jobs.append(job)
        }

        var result = TickResult(asOf: now, tenants: tenants.count, concurrency: threads, jobs: jobs,
                                notYetScheduled: TickHooks.notYetScheduled, metrics: nil)
        if let metricsOut { result.metrics = try writeMetrics(to: metricsOut) }
        return result
    }

    /// Runs one due job and turns its end into a ``TickJob``: a lock held elsewhere is `locked`,
    /// any other error `failed` with its message (the job itself recorded the failed run).
    private func tickJob(tenant: String?, kind: RunKind, lockName: String? = nil, _ body: () throws -> Outcome) -> TickJob {
        var job = TickJob(tenant: tenant, store: nil, kind: kind.rawValue, result: .ok, error: nil)
        do {
            let lock = try lockName.map { try FileLock(home: home, name: $0) }
            defer { withExtendedLifetime(lock) {} }
            job.result = try body() == .ok ? .ok : .problemFound
        } catch let f as any TresorFailure where f.kind == .locked {
            job.result = .locked
            job.error = f.message
        } catch {
            job.result = .failed
            job.error = (error as? any TresorFailure)?.message ?? "\(error)"
        }
        return job
    }

    /// The drill-age control (`drill status`) as a recorded run, so tick knows it ran today.
    private func drillControlRun() throws -> Outcome {
        let run = try catalog.startRun(kind: .drillControl, tenant: nil, at: clock.now())
        do {
            let r = try drillStatus(maxAge: nil)
            struct Detail: Encodable { var overdue: [String]; var controlRecordSeq: Int64? }
            try catalog.finishRun(id: run, at: clock.now(), status: RunStatus(r.outcome),
                                  detail: json(Detail(overdue: r.overdue.map(\.tenant), controlRecordSeq: r.controlRecordSeq)))
            return r.outcome
        } catch {
            try? catalog.finishRun(id: run, at: clock.now(), status: .failed, detail: json(["error": "\(error)"]))
            throw error
        }
    }

    private static func doneKey(kind: String, owner: String) -> String { kind + "\u{0}" + owner }

    /// The store a `store-clean` run cleaned (its detail's `store`); `nil` for other runs.
    private static func storeOf(_ run: RunRecord) -> String? {
        guard run.kind == .storeClean else { return nil }
        // Our own JSON; a detail that is not an object has no store and the store is cleaned again.
        let object = (try? JSONSerialization.jsonObject(with: Data(run.detail.utf8))) as? [String: Any]
        return object?["store"] as? String
    }
}
