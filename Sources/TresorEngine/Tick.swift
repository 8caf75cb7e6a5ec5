import Foundation
import TresorCatalog
import TresorCore

/// What a tick job is: a recorded job of a ``RunKind`` (what ``TickPlanner`` schedules), or
/// the heartbeat, which `tick` writes for opted-in tenants at every tick and records no run for.
/// Encoded and printed as text: the run kind's raw value, or `heartbeat`.
public enum TickJobKind: Hashable, Sendable, Codable, CustomStringConvertible {
    case run(RunKind)
    case heartbeat

    public var rawValue: String {
        switch self {
        case .run(let kind): kind.rawValue
        case .heartbeat: "heartbeat"
        }
    }

    public var description: String { rawValue }

    /// `heartbeat`, or a run kind's raw value; nil for any other text.
    public init?(rawValue: String) {
        if rawValue == "heartbeat" {
            self = .heartbeat
        } else if let kind = RunKind(rawValue: rawValue) {
            self = .run(kind)
        } else {
            return nil
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let kind = Self(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown tick job kind '\(text)'"))
        }
        self = kind
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

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
    /// The run kind (`docs-backup`, `pg-basebackup`, `replicate`, `retention`, `drill`,
    /// `drill-control`, `deletion`, `sweep`, `store-clean`) or `heartbeat`.
    public var kind: TickJobKind
    public var result: Result
    public var error: String?
}

/// What one `tresor tick` did.
public struct TickResult: Codable, Sendable {
    public var asOf: Date
    public var tenants: Int
    public var concurrency: Int
    /// Every due job, tenants' jobs first (by tenant), then installation-wide and store jobs.
    public var jobs: [TickJob]
    /// Due jobs another tick claimed between this tick's plan and its claim: that tick did them.
    public var alreadyDone: Int
    /// Work issue 14 names that `tick` leaves to something else: see ``TickHooks``.
    public var notYetScheduled: [String]
    public var metrics: MetricsResult?

    public var failed: Int { jobs.filter { $0.result == .failed }.count }
    public var outcome: Outcome {
        jobs.contains { $0.result == .problemFound } || metrics?.outcome == .problemFound ? .problemFound : .ok
    }
}

/// What `tick` does not run itself. `pg stream` is a long-lived process per streaming tenant; a
/// systemd unit keeps it alive (docs/operations.md), restarting it within seconds, where a tick
/// from cron would notice a dead stream only minutes later and would tie the stream's life to a
/// short-lived cron job's process group.
public enum TickHooks {
    public static let notYetScheduled: [String] = []
}

/// Runs one due job. ``InstallationTickExecutor`` runs the real jobs; tests of the schedule use
/// a double that only records runs.
public protocol TickExecutor: Sendable {
    /// Runs `job` (recording its run in the catalog) and returns its outcome; a `.locked`
    /// failure means another process is doing the work.
    func run(_ job: TickJobSpec, in installation: Installation) throws -> Outcome
}

/// The real jobs, as `tresor tick` runs them.
public struct InstallationTickExecutor: TickExecutor {
    /// The tresor executable, which drills write into the scratch cluster's restore_command.
    public let binary: String

    public init(binary: String) { self.binary = binary }

    public func run(_ job: TickJobSpec, in inst: Installation) throws -> Outcome {
        func tenant() throws -> TenantID {
            guard let id = job.tenant else { throw CoreError.failed("tick job \(job) names no tenant") }
            return id
        }
        switch job.kind {
        case .documentsBackup: return try inst.backupDocuments(tenant: tenant()).outcome
        case .postgresBaseBackup: return try inst.basebackupPostgres(tenant: tenant()).outcome
        case .replicate: return try inst.replicate(tenant: tenant(), to: nil).outcome
        // A running backup holds the tenant's lock: retention does not wait for it, the next tick retries.
        case .retention: return try inst.applyRetention(tenant: tenant(), dryRun: false, lockWait: 0).outcome
        case .drill: return try inst.runDrill(tenant: tenant(), target: .random, seed: nil, binary: binary).outcome
        case .drillControl: return try inst.drillControlRun()
        case .deletion: return try inst.runDeletion(dryRun: false).outcome
        // Reports what it finds (exit 3) and purges nothing: an operator decides (docs/operations.md).
        case .sweep: return try inst.sweep(roots: [], dsns: [], storeNames: [], purge: false).outcome
        case .storeClean: return try inst.cleanStore(name: job.store ?? "").outcome
        default: throw CoreError.failed("tick has no job of kind \(job.kind.rawValue)")
        }
    }
}

extension Installation {
    /// `tresor tick`: runs every job that is due according to the policies and the catalog.
    ///
    /// ``TickPlanner/due(_:policy:now:)`` decides what is due from the catalog's state. Each job
    /// is then claimed (`claims`, by default ``locks``: `flock` files, or catalog leases in fleet mode; one claim per job kind
    /// and tenant or store), the catalog is read again for that job (another tick may have done
    /// it since the plan), and it runs. A claim another process holds makes the job `locked`:
    /// that process is doing it. Tenants are worked on by `policy.tickConcurrency` threads, one
    /// tenant's jobs one after another. `metricsOut`, when given, is written last.
    public func tick(metricsOut: String? = nil, executor: any TickExecutor, claims: (any Locks)? = nil) throws -> TickResult {
        let now = clock.now()
        return try recordRun(.tick, tenant: nil) {
            try tickBody(now: now, metricsOut: metricsOut, executor: executor, claims: claims ?? locks)
        } status: {
            $0.failed > 0 ? .failed : RunStatus($0.outcome)
        } detail: {
            ["jobs": $0.jobs.count, "failed": $0.failed]
        }
    }

    private func tickBody(now: Date, metricsOut: String?, executor: any TickExecutor, claims: any Locks) throws -> TickResult {
        let state = try TickState.load(from: catalog)
        let groups = TickPlanner.due(state, policy: policy, now: now)
        let results = Locked([[TickJob]](repeating: [], count: groups.count))
        let skipped = Locked(0)
        let next = Locked(0)
        let threads = max(1, min(policy.tickConcurrency, groups.count))
        runOnThreads(threads, name: "tick") { _ in
            while true {
                let i = next.withLock { n -> Int in
                    defer { n += 1 }; return n
                }
                guard i < groups.count else { return }
                var jobs: [TickJob] = []
                for spec in groups[i] {
                    if let job = self.claimAndRun(spec, planned: state, executor: executor, claims: claims) {
                        jobs.append(job)
                    } else {
                        skipped.withLock { $0 += 1 }
                    }
                }
                results.withLock { $0[i] = jobs }
            }
        }
        var jobs = results.current.flatMap { $0 }
        // A name no valid tenant id (a catalog edited by hand) gets no job planned; it fails the
        // tick loudly here instead, and every other tenant's jobs have run.
        for name in state.invalidTenantNames {
            jobs.append(
                TickJob(
                    tenant: name, store: nil, kind: .run(.tick), result: .failed,
                    error: "the catalog names tenant '\(name)', which is no valid tenant name: no job of it runs (the catalog was edited by hand?)"))
        }
        // Heartbeats of the tenants that opted in (drills.heartbeat_tenants), every tick: see HeartbeatJob.swift.
        jobs += writeHeartbeats()
        var result = TickResult(
            asOf: now, tenants: state.tenants.count, concurrency: threads, jobs: jobs,
            alreadyDone: skipped.current, notYetScheduled: TickHooks.notYetScheduled, metrics: nil)
        if let metricsOut { result.metrics = try writeMetrics(to: metricsOut) }
        return result
    }

    /// Claims `spec`, checks it is still undone, runs it. `nil` when another run finished it since
    /// the plan was made.
    private func claimAndRun(_ spec: TickJobSpec, planned: TickState, executor: any TickExecutor, claims: any Locks) -> TickJob? {
        var job = TickJob(tenant: spec.tenant?.rawValue, store: spec.store, kind: .run(spec.kind), result: .ok, error: nil)
        do {
            // One tick at a time works on a tenant (a second one, or another worker in a fleet,
            // must not prune or drill while the first is still backing it up), then one per job.
            let tenantClaim = try spec.tenant.map { try claims.acquire(TickJobSpec.tenantClaimName($0)) }
            defer { tenantClaim?.release() }
            let claim = try claims.acquire(spec.claimName)
            defer { claim.release() }
            if try doneSincePlan(spec, planned: planned) { return nil }
            // A test hook (TRESOR_TEST_HOLD_AFTER_CLAIM): hold the claim so a test can kill this worker mid-job.
            if holdAfterClaim > 0 { Thread.sleep(forTimeInterval: holdAfterClaim) }
            job.result = try executor.run(spec, in: self) == .ok ? .ok : .problemFound
        } catch let f as any TresorFailure where f.kind == .locked {
            job.result = .locked
            job.error = f.message
        } catch {
            job.result = .failed
            job.error = (error as? any TresorFailure)?.message ?? "\(error)"
        }
        return job
    }

    /// Whether a run of `spec` finished (ok or problem found) after the state the plan was made
    /// from: then a tick that held the claim meanwhile did it.
    private func doneSincePlan(_ spec: TickJobSpec, planned: TickState) throws -> Bool {
        let key = TickState.Key(spec.kind, spec.owner)
        // Store-clean runs carry no tenant: read enough of them to see every store's newest.
        let limit = spec.kind == .storeClean ? 4 * max(planned.stores.count, 1) : 8
        let recent = try catalog.runs(tenant: spec.tenant?.rawValue, kind: spec.kind, limit: limit)
        var fresh = TickState(tenants: [], stores: [])
        for run in recent where (run.tenant ?? RunRecord.storeCleaned(run) ?? "") == spec.owner { fresh.note(run) }
        guard let newest = fresh.lastDone[key] else { return false }
        return planned.lastDone[key].map { newest > $0 } ?? true
    }

    /// The drill-age control (`drill status`) as a recorded run, so tick knows it ran today.
    func drillControlRun() throws -> Outcome {
        struct Detail: Encodable, JobResult { var overdue: [String]; var controlRecordSeq: Int64?; var outcome: Outcome }
        return try run(
            Job(.drillControl, tenant: nil) {
                let r = try self.drillStatus(maxAge: nil)
                return Detail(overdue: r.overdue.map(\.tenant), controlRecordSeq: r.controlRecordSeq, outcome: r.outcome)
            }
        ).outcome
    }
}
