import Foundation
import TresorCatalog
import TresorCore

// What `tresor tick` runs is decided by one pure function, ``TickPlanner/due(_:policy:now:)``,
// from the catalog's state (read in a handful of batched queries into a ``TickState``), the
// policy and the clock. Executing the plan is a separate step (Tick.swift), so the schedule can
// be tested over a simulated month without running a job.
//
// Slots. A periodic job is due once per slot of its interval; slots are aligned to the Unix
// epoch (UTC), so a daily job is due once per UTC day whatever time the last one ran, and after
// downtime it runs once, not once per missed slot. A failed run does not count: the job stays
// due and the next tick retries it.
//
// Drills are spread over their interval by a stable hash of the tenant's name: each tenant has
// its own phase, and its drill is due at the first tick after each of its phase points. A drill
// pulled forward (see below) covers the phase point it is nearest to, so it is not repeated a
// day later. A tenant never drilled counts from its creation, so a new installation's tenants
// are spread too, rather than all drilled by the first tick. Whatever the phase, a tenant whose
// last passing drill (or, never passed, its creation) is older than `drills.max_age` minus
// `drills.renew_before` is drilled at once, at most once a UTC day, when its last drill did not
// pass (or it never had one) or when its next phase point comes after `max_age` (after a policy
// change); a tenant whose drills pass keeps its day, so a 30-day interval stays one drill a month.

/// One job of a tick: its kind and what it concerns.
public struct TickJobSpec: Hashable, Sendable, Codable, CustomStringConvertible {
    public var kind: RunKind
    /// The tenant, or `nil` for installation-wide and store jobs.
    public var tenant: TenantID?
    /// The store, for `store-clean`.
    public var store: String?

    public init(_ kind: RunKind, tenant: TenantID? = nil, store: String? = nil) {
        self.kind = kind
        self.tenant = tenant
        self.store = store
    }

    /// What the job is run for: the tenant, the store, or `""` for installation-wide jobs.
    public var owner: String { tenant?.rawValue ?? store ?? "" }

    /// The name of the claim two ticks compete for (one lock per job kind and owner).
    public var claimName: String { owner.isEmpty ? "tick-\(kind.rawValue)" : "tick-\(kind.rawValue)-\(owner)" }

    /// The claim a tick holds on a tenant while it runs any of the tenant's jobs.
    public static func tenantClaimName(_ tenant: TenantID) -> String { "tick-tenant-\(tenant.rawValue)" }

    public var description: String { "\(kind.rawValue) \(owner.isEmpty ? "-" : owner)" }
}

/// The state a tick decides from: the catalog's tenants, stores, deletions and the newest
/// finished runs of each kind. Built by ``TickState/load(from:)`` in five queries, whatever the
/// number of tenants or the length of the history.
public struct TickState: Sendable {
    public struct Key: Hashable, Sendable {
        public var kind: RunKind
        public var owner: String
        public init(_ kind: RunKind, _ owner: String) {
            self.kind = kind
            self.owner = owner
        }
    }

    /// The catalog's tenants whose names are valid ids, in the catalog's order; ``tenantIDs``
    /// holds their names as ids.
    public private(set) var tenants: [TenantRecord]
    /// The name of each of ``tenants`` (same order), checked once here.
    public private(set) var tenantIDs: [TenantID]
    /// Names in the catalog (tenant or deletion rows) that are no valid ``TenantID``: only a
    /// catalog edited by hand holds one (the catalog refuses such a name when a tenant is added).
    /// Nothing is planned for them; `tick` reports each as a failed job, and the other tenants'
    /// jobs run.
    public private(set) var invalidTenantNames: [String] = []
    public var stores: [String]
    /// Every recorded deletion, by tenant.
    public var deletions: [TenantID: DeletionStep]
    /// The start of the newest run that ended `ok` or `problem_found`, per kind and owner.
    public var lastDone: [Key: Date]
    /// The start of the newest `ok` run, per kind and owner (for drills: the last passing one).
    public var lastOK: [Key: Date]
    /// The start of the newest `failed` run, per kind and owner.
    public var lastFailed: [Key: Date] = [:]

    /// A tenant whose name is no valid id goes to ``invalidTenantNames``.
    public init(
        tenants: [TenantRecord], stores: [String], deletions: [TenantID: DeletionStep] = [:],
        lastDone: [Key: Date] = [:], lastOK: [Key: Date] = [:]
    ) {
        self.tenants = []
        self.tenantIDs = []
        for t in tenants {
            // Not lost: a name that is no id is kept in invalidTenantNames and tick reports it.
            if let id = try? t.id {
                self.tenants.append(t)
                self.tenantIDs.append(id)
            } else {
                invalidTenantNames.append(t.name)
            }
        }
        self.stores = stores
        self.deletions = deletions
        self.lastDone = lastDone
        self.lastOK = lastOK
    }

    /// Reads the state from `catalog`.
    public static func load(from catalog: any Catalog) throws -> TickState {
        var state = TickState(tenants: try catalog.tenants(), stores: try catalog.stores().map(\.name))
        for d in try catalog.deletions() {
            // Not lost, as above: tick reports the name.
            if let id = try? TenantID(d.tenant) {
                state.deletions[id] = d.step
            } else if !state.invalidTenantNames.contains(d.tenant) {
                state.invalidTenantNames.append(d.tenant)
            }
        }
        let kinds = Set(TickPlanner.tenantJobKinds + TickPlanner.installationJobKinds)
        for run in try catalog.latestRuns(kinds: kinds, statuses: [.ok, .problemFound, .failed]) { state.note(run) }
        return state
    }

    /// Adds a finished run to the state.
    public mutating func note(_ run: RunRecord) { note(LatestRun(run)) }

    /// Adds the newest run of a kind, owner and status (what ``load(from:)`` does for each).
    public mutating func note(_ run: LatestRun) {
        let key = Key(run.kind, run.tenant ?? run.store ?? "")
        if run.status == .failed, lastFailed[key].map({ $0 < run.startedAt }) ?? true { lastFailed[key] = run.startedAt }
        guard run.status == .ok || run.status == .problemFound else { return }
        if lastDone[key].map({ $0 < run.startedAt }) ?? true { lastDone[key] = run.startedAt }
        if run.status == .ok, lastOK[key].map({ $0 < run.startedAt }) ?? true { lastOK[key] = run.startedAt }
    }
}

/// The schedule: which jobs are due, as a pure function of state, policy and time.
public enum TickPlanner {
    /// The kinds of the jobs `tick` runs per tenant, in the order it runs them.
    public static let tenantJobKinds: [RunKind] = [.documentsBackup, .postgresBaseBackup, .replicate, .retention, .drill]
    /// The kinds of the installation-wide and store jobs `tick` runs.
    public static let installationJobKinds: [RunKind] = [.drillControl, .deletion, .sweep, .storeClean]

    /// The jobs due at `now`, grouped: each inner list runs in order, one job after another (a
    /// tenant's jobs: document backup, base backup, replication, retention, drill); the groups
    /// may run at once. Tenant groups come first, by tenant name, then installation-wide jobs
    /// (drill-age control, deletion, sweep, store clean), one group each.
    public static func due(_ state: TickState, policy: Policy, now: Date) -> [[TickJobSpec]] {
        var groups: [[TickJobSpec]] = []
        let day = PolicyDuration(seconds: 86400)
        func done(_ kind: RunKind, _ owner: String) -> Date? { state.lastDone[.init(kind, owner)] }
        func periodic(_ kind: RunKind, _ owner: String, _ interval: PolicyDuration) -> Bool {
            guard let last = done(kind, owner) else { return true }
            return last < slotStart(now, interval: interval)
        }

        for (id, t) in zip(state.tenantIDs, state.tenants) where isActive(id, t, state, policy: policy, now: now) {
            var jobs: [TickJobSpec] = []
            let owner = id.rawValue
            let docs = !t.docRoots.isEmpty && periodic(.documentsBackup, owner, policy.documents.backupInterval)
            let base = t.pgDSN != nil && periodic(.postgresBaseBackup, owner, policy.postgres.baseBackupInterval)
            if docs { jobs.append(TickJobSpec(.documentsBackup, tenant: id)) }
            if base { jobs.append(TickJobSpec(.postgresBaseBackup, tenant: id)) }
            let lastBackup = [done(.documentsBackup, owner), done(.postgresBaseBackup, owner)].compactMap { $0 }.max()
            if t.offsiteStore != nil {
                let lastReplication = done(.replicate, owner)
                // After this tick's backups, or when a backup finished after the last replication.
                let behind = lastBackup.map { b in lastReplication.map { $0 < b } ?? true } ?? false
                if docs || base || behind { jobs.append(TickJobSpec(.replicate, tenant: id)) }
            }
            // Retention needs a repository: a tenant never backed up has nothing to keep or drop.
            if (lastBackup != nil || docs || base), periodic(.retention, owner, day) {
                jobs.append(TickJobSpec(.retention, tenant: id))
            }
            if t.pgDSN != nil, drillDue(id, t, state, policy: policy, now: now) {
                jobs.append(TickJobSpec(.drill, tenant: id))
            }
            if !jobs.isEmpty { groups.append(jobs) }
        }

        if periodic(.drillControl, "", day) { groups.append([TickJobSpec(.drillControl)]) }
        // The sweep after the deletion, so it hunts what the deletion should have removed.
        var deletion: [TickJobSpec] = []
        if deletionDue(state, policy: policy, now: now) { deletion.append(TickJobSpec(.deletion)) }
        if !sweepTargets(state, policy: policy, now: now).isEmpty, periodic(.sweep, "", policy.deletion.sweepInterval) {
            deletion.append(TickJobSpec(.sweep))
        }
        if !deletion.isEmpty { groups.append(deletion) }
        for store in state.stores where periodic(.storeClean, store, day) {
            groups.append([TickJobSpec(.storeClean, store: store)])
        }
        return groups
    }

    /// The start of the slot of `interval` that `now` falls in, slots aligned to the Unix epoch
    /// plus `phase` seconds.
    public static func slotStart(_ now: Date, interval: PolicyDuration, phase: Double = 0) -> Date {
        let s = max(interval.seconds, 1)
        return Date(timeIntervalSince1970: ((now.timeIntervalSince1970 - phase) / s).rounded(.down) * s + phase)
    }

    /// The tenant's drill phase within `interval`, seconds: FNV-1a of its name, so it is the same
    /// on every worker and every run, and different tenants fall on different days.
    public static func drillPhase(tenant: TenantID, interval: PolicyDuration) -> Double {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in tenant.rawValue.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        let seconds = UInt64(max(interval.seconds, 1))
        return Double(h % seconds)
    }

    /// Whether the tenant's drill is due (see the overview at the top of this file).
    static func drillDue(_ id: TenantID, _ t: TenantRecord, _ state: TickState, policy: Policy, now: Date) -> Bool {
        let interval = policy.drills.interval
        // A drill is hours of work: one that failed (could not even record its result) is
        // retried the next day, not at every tick.
        let today = slotStart(now, interval: PolicyDuration(seconds: 86400))
        if let failed = state.lastFailed[.init(.drill, id.rawValue)], failed >= today { return false }
        let lastDrill = state.lastDone[.init(.drill, id.rawValue)]
        let phasePoint = slotStart(now, interval: interval, phase: drillPhase(tenant: id, interval: interval))
        // A drill done within half an interval before the phase point covers it; a tenant never
        // drilled is due at the first phase point after its creation.
        let covered = lastDrill.map { $0 >= phasePoint.addingTimeInterval(-interval.seconds / 2) } ?? (t.createdAt >= phasePoint)
        if !covered { return true }
        let lastPass = state.lastOK[.init(.drill, id.rawValue)]
        let passed = [lastPass, t.createdAt].compactMap { $0 }.max()!
        let renewAt = passed.addingTimeInterval(policy.drills.maxAge.seconds - policy.drills.renewBefore.seconds)
        guard now >= renewAt else { return false }
        let triedToday = lastDrill.map { $0 >= today } ?? false
        let lastDidNotPass = lastPass == nil || lastDrill.map { $0 > lastPass! } ?? true
        let nextPhasePoint = phasePoint.addingTimeInterval(interval.seconds)
        return !triedToday && (lastDidNotPass || nextPhasePoint > passed.addingTimeInterval(policy.drills.maxAge.seconds))
    }

    /// A tenant past its deletion deadline (and not on hold), or whose deletion has begun, is no
    /// longer backed up, drilled or pruned: the deletion job is what is due for it.
    static func isActive(_ id: TenantID, _ t: TenantRecord, _ state: TickState, policy: Policy, now: Date) -> Bool {
        guard state.deletions[id].map({ $0 <= .planned }) ?? true else { return false }
        return DeletionRule.state(contractEnd: t.contractEnd, hold: t.holdReason, delay: policy.deletion.delayAfterContractEnd, now: now) != .due
    }

    /// The deletion job is due when a tenant passed its deadline since the last deletion run
    /// (it decides per tenant, holds included), or, at most daily, when a deletion is unfinished.
    static func deletionDue(_ state: TickState, policy: Policy, now: Date) -> Bool {
        let last = state.lastDone[.init(.deletion, "")]
        for t in state.tenants {
            guard let end = t.contractEnd, t.holdReason == nil else { continue }
            let deadline = DeletionRule.deadline(contractEnd: end, delay: policy.deletion.delayAfterContractEnd)
            if deadline <= now, last.map({ $0 < deadline }) ?? true { return true }
        }
        let unfinished = state.deletions.values.contains { $0 < .certified }
        return unfinished && (last.map { $0 < slotStart(now, interval: PolicyDuration(seconds: 86400)) } ?? true)
    }

    /// The tenants a sweep hunts: every recorded deletion, and tenants past their deadline.
    static func sweepTargets(_ state: TickState, policy: Policy, now: Date) -> [TenantID] {
        var targets = Set(state.deletions.keys)
        for (id, t) in zip(state.tenantIDs, state.tenants)
        where DeletionRule.state(contractEnd: t.contractEnd, hold: t.holdReason, delay: policy.deletion.delayAfterContractEnd, now: now) == .due {
            targets.insert(id)
        }
        return targets.sorted()
    }
}
