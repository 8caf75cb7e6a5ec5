import Foundation

// The catalog is state, not truth: which tenants and stores exist, which cross-region copies
// were approved, and which jobs ran. Everything in a repository can be re-derived without it.
//
// `Catalog` is the one protocol the engine and the CLI talk to. ``SQLiteCatalog`` is the
// embedded implementation; a PostgreSQL catalog for a fleet of workers will sit behind the same
// protocol, which is why nothing here mentions SQLite and every date is a plain `Date`.
// Implementations keep dates to the millisecond (sub-millisecond parts are rounded away).

/// A place backups are written to: a local directory or an S3-compatible bucket.
public struct StoreRecord: Sendable, Equatable, Codable {
    /// The operator's name for the store, unique in the catalog (`store add NAME`).
    public var name: String
    /// `file:///path` or `s3://bucket/prefix?endpoint=...&region=...`.
    public var url: String
    /// The region the store's data lives in, compared with a tenant's region.
    public var region: String
    public var addedAt: Date

    public init(name: String, url: String, region: String, addedAt: Date) {
        self.name = name
        self.url = url
        self.region = region
        self.addedAt = addedAt
    }
}

/// One customer environment: where its backups go, its database and documents, its contract.
public struct TenantRecord: Sendable, Equatable, Codable {
    /// Unique in the catalog; also the tenant's prefix in every store.
    public var name: String
    /// The region the tenant's backups must stay in unless a ``RegionApproval`` says otherwise.
    public var region: String
    /// The name of the tenant's primary store; it must exist in the catalog.
    public var store: String
    /// The name of the store replicas go to; it must exist in the catalog when set.
    public var offsiteStore: String?
    /// The connection string of the tenant's PostgreSQL cluster. May hold a password: never
    /// print it, never put it in an error message.
    public var pgDSN: String?
    /// The tenant's document folders, in the order the operator gave them.
    public var docRoots: [String]
    public var createdAt: Date
    /// When the contract ended; the deletion clock starts here. `nil` while it runs.
    public var contractEnd: Date?
    /// Why deletion is on legal hold; `nil` when it is not.
    public var holdReason: String?

    public init(
        name: String, region: String, store: String, offsiteStore: String? = nil, pgDSN: String? = nil,
        docRoots: [String] = [], createdAt: Date, contractEnd: Date? = nil, holdReason: String? = nil
    ) {
        self.name = name
        self.region = region
        self.store = store
        self.offsiteStore = offsiteStore
        self.pgDSN = pgDSN
        self.docRoots = docRoots
        self.createdAt = createdAt
        self.contractEnd = contractEnd
        self.holdReason = holdReason
    }
}

/// A recorded decision that a tenant's backups may go to a store outside its region.
/// Approvals are history: adding a second one for the same tenant and store keeps both.
public struct RegionApproval: Sendable, Equatable, Codable {
    public var tenant: String
    public var store: String
    /// Who approved it, as given by `region approve --by`.
    public var approvedBy: String
    public var reason: String
    public var approvedAt: Date

    public init(tenant: String, store: String, approvedBy: String, reason: String, approvedAt: Date) {
        self.tenant = tenant
        self.store = store
        self.approvedBy = approvedBy
        self.reason = reason
        self.approvedAt = approvedAt
    }
}

/// One job run (a backup, a drill, a tick, ...), started and later finished.
public struct RunRecord: Sendable, Equatable, Codable {
    /// Assigned by the catalog; unique.
    public var id: Int64
    /// `nil` for runs that concern no single tenant (a tick, a sweep).
    public var tenant: String?
    /// What ran.
    public var kind: RunKind
    public var startedAt: Date
    /// `nil` while the run has not finished.
    public var endedAt: Date?
    /// ``RunRecord/runningStatus`` until ``Catalog/finishRun(id:at:status:detail:)`` sets it.
    public var status: RunStatus
    /// JSON text, stored verbatim; `{}` until the run finishes.
    public var detail: String
    /// Who started the run (`host:pid`, see ``WorkerName``); `nil` for runs recorded before
    /// catalogs kept it.
    public var worker: String?

    /// The status of a run that has started and not finished.
    public static let runningStatus = RunStatus.running

    public init(
        id: Int64, tenant: String?, kind: RunKind, startedAt: Date, endedAt: Date? = nil,
        status: RunStatus, detail: String, worker: String? = nil
    ) {
        self.worker = worker
        self.id = id
        self.tenant = tenant
        self.kind = kind
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.status = status
        self.detail = detail
    }
}

/// The installation's state: tenants, stores, region approvals and job runs.
///
/// Every method is safe to call from several threads at once, and every write is atomic: it
/// happens entirely or not at all. Errors are ``CatalogError``s; input mistakes (a duplicate
/// name, an unknown tenant or store) have kind `.usage`, storage problems `.failed`.
public protocol Catalog: Sendable {
    /// Adds a store. Throws `.duplicate` if a store of that name exists.
    func addStore(_ store: StoreRecord) throws
    /// The store of that name, or `nil`.
    func store(named name: String) throws -> StoreRecord?
    /// All stores, sorted by name.
    func stores() throws -> [StoreRecord]

    /// Adds a tenant. Throws `.invalid` if its name is no valid ``TenantID``, `.duplicate` if a
    /// tenant of that name exists and `.notFound` if its store or offsite store is not in the catalog.
    func addTenant(_ tenant: TenantRecord) throws
    /// Replaces every field of the tenant named `tenant.name`. Throws `.notFound` if there is no
    /// such tenant, or if its store or offsite store is not in the catalog.
    func updateTenant(_ tenant: TenantRecord) throws
    /// The tenant of that name, or `nil`.
    func tenant(named name: String) throws -> TenantRecord?
    /// All tenants, sorted by name.
    func tenants() throws -> [TenantRecord]

    /// Records an approval. Throws `.notFound` if the tenant or the store is not in the catalog.
    func addRegionApproval(_ approval: RegionApproval) throws
    /// The tenant's approvals, oldest first; empty if it has none (or does not exist).
    func regionApprovals(tenant: String) throws -> [RegionApproval]

    /// Records the start of a run, with status ``RunRecord/runningStatus`` and detail `{}`, and
    /// returns its id. `tenant` need not be in the catalog: runs outlive the tenants they served.
    func startRun(kind: RunKind, tenant: String?, at: Date) throws -> Int64
    /// Records the end of a run. Throws `.notFound` if no run has that id. Finishing a run
    /// twice overwrites the first result.
    func finishRun(id: Int64, at: Date, status: RunStatus, detail: String) throws
    /// Runs, newest start first (ties: higher id first), at most `limit` of them (none when
    /// `limit` is 0 or less). A non-nil `tenant` or `kind` keeps only the runs that match it;
    /// `nil` matches every run.
    func runs(tenant: String?, kind: RunKind?, limit: Int) throws -> [RunRecord]
    /// Deletes `tenant`'s runs (nil: the runs of no tenant, the installation's own) that ended
    /// before `cutoff` (with `dryRun`, only counts them) and returns how many per kind. Never
    /// deleted: a run still running, and the newest finished (ok or problem found) run of each
    /// kind (for the installation's store cleaning, of each store), which `tick` reads.
    func pruneRuns(tenant: String?, endedBefore cutoff: Date, dryRun: Bool) throws -> [RunKind: Int]

    /// For each kind among `kinds`, tenant, status among `statuses` and (for `store-clean` runs)
    /// the store in the detail, the start of the newest run: what `tick` reads to decide what is
    /// due, without reading the history row by row. Order unspecified.
    func latestRuns(kinds: Set<RunKind>, statuses: Set<RunStatus>) throws -> [LatestRun]

    /// Starts recording a tenant's deletion with `plan` at step `planned`, unless one is already
    /// recorded (then that one is returned unchanged: a rerun resumes it).
    func beginDeletion(tenant: String, plan: String, at: Date) throws -> DeletionRecord
    /// The recorded deletion of `tenant`, or `nil`.
    func deletion(tenant: String) throws -> DeletionRecord?
    /// Every recorded deletion, by tenant name.
    func deletions() throws -> [DeletionRecord]
    /// Moves a deletion to `step` with `report`; `finishedAt` set marks it done. `.notFound` if
    /// none is recorded.
    func updateDeletion(tenant: String, step: DeletionStep, report: String, finishedAt: Date?) throws
    /// Removes every row that names `tenant` (its tenant row, document roots, region approvals
    /// and runs) in one transaction, and returns how many rows went. The deletion row stays.
    func purgeTenantRows(_ tenant: String) throws -> Int
    /// How many rows still name `tenant` (what ``purgeTenantRows(_:)`` removes).
    func tenantRowCount(_ tenant: String) throws -> Int

    /// Claims `job` for `worker` for `lease` seconds of the database's clock (so hosts with
    /// different clocks agree), unless another worker holds an unexpired lease on it (`.held`)
    /// or a worker finished it at or after `notDoneSince` (`.done`: someone did it since the
    /// caller looked). At most one caller gets `.claimed` while the lease runs; a worker that dies
    /// holding one releases it when the lease runs out. PostgreSQL locks the lease row `FOR
    /// UPDATE SKIP LOCKED`; SQLite takes its write lock (one host).
    func claimJob(_ job: JobKey, worker: String, lease: TimeInterval, notDoneSince: Date?) throws -> JobClaim
    /// Extends `worker`'s lease on `job` to `lease` seconds from now; `false` if another worker
    /// holds it now (the lease ran out and was taken).
    func renewJob(_ job: JobKey, worker: String, lease: TimeInterval) throws -> Bool
    /// Ends `worker`'s lease on `job`; `doneAt`, when given, records the job as finished then
    /// (what later claims compare with `notDoneSince`). `false` if another worker holds it now.
    @discardableResult
    func releaseJob(_ job: JobKey, worker: String, doneAt: Date?) throws -> Bool
}

/// What a lease is on: a job name (a ``RunKind``'s raw value, or `lock` for a named lock) of an
/// owner (a tenant, a store, a lock name, or `""` for installation-wide jobs).
public struct JobKey: Sendable, Hashable, Codable {
    public var owner: String
    public var job: String

    public init(owner: String, job: String) {
        self.owner = owner
        self.job = job
    }
}

/// The answer to ``Catalog/claimJob(_:worker:lease:notDoneSince:)``.
public enum JobClaim: Sendable, Equatable {
    /// The caller holds the lease now.
    case claimed
    /// Another worker holds an unexpired lease (named when the catalog knows it).
    case held(by: String)
    /// A worker finished the job at this time, not before `notDoneSince`.
    case done(at: Date)
}

/// The newest run of one kind, tenant (or store) and status: see ``Catalog/latestRuns(kinds:statuses:)``.
public struct LatestRun: Sendable, Equatable, Hashable {
    public var kind: RunKind
    public var tenant: String?
    /// The store a `store-clean` run cleaned; `nil` for other kinds.
    public var store: String?
    public var status: RunStatus
    public var startedAt: Date

    public init(kind: RunKind, tenant: String?, store: String? = nil, status: RunStatus, startedAt: Date) {
        self.kind = kind
        self.tenant = tenant
        self.store = store
        self.status = status
        self.startedAt = startedAt
    }

    public init(_ run: RunRecord) {
        self.init(kind: run.kind, tenant: run.tenant, store: RunRecord.storeCleaned(run), status: run.status, startedAt: run.startedAt)
    }
}

extension Catalog {
    /// ``Catalog/latestRuns(kinds:statuses:)`` by reading every run: correct for any catalog,
    /// linear in the history. Catalogs with a query language answer it with grouped queries.
    public func latestRuns(kinds: Set<RunKind>, statuses: Set<RunStatus>) throws -> [LatestRun] {
        var newest: [LatestRun: Date] = [:]
        for run in try runs(tenant: nil, kind: nil, limit: Int(Int32.max)) where kinds.contains(run.kind) && statuses.contains(run.status) {
            var key = LatestRun(run)
            key.startedAt = .distantPast
            if newest[key].map({ $0 < run.startedAt }) ?? true { newest[key] = run.startedAt }
        }
        return newest.map {
            var r = $0.key; r.startedAt = $0.value; return r
        }
    }
}

extension RunRecord {
    /// The store a `store-clean` run cleaned (its detail's `store`); `nil` for other runs and for
    /// a detail without one (then that store counts as never cleaned and is cleaned again).
    public static func storeCleaned(_ run: RunRecord) -> String? {
        guard run.kind == .storeClean else { return nil }
        let object = (try? JSONSerialization.jsonObject(with: Data(run.detail.utf8))) as? [String: Any]
        return object?["store"] as? String
    }
}

/// Where a tenant's post-contract deletion stands. Steps only move forward.
public enum DeletionStep: String, Sendable, Codable, CaseIterable, Comparable {
    /// The plan (the footprint) is recorded; nothing is destroyed yet.
    case planned
    /// Every key envelope and the WAL key are gone: every copy is unreadable.
    case keysDestroyed = "keys-destroyed"
    /// Every object, row and path of the footprint is removed.
    case dataDeleted = "data-deleted"
    /// The certificate is in the evidence log.
    case certified

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// One tenant's deletion as recorded in the catalog.
public struct DeletionRecord: Sendable, Equatable, Codable {
    public var tenant: String
    public var step: DeletionStep
    public var startedAt: Date
    public var finishedAt: Date?
    /// JSON text: the plan the deletion follows (written by the engine).
    public var plan: String
    /// JSON text: what was removed so far, accumulated over reruns.
    public var report: String

    public init(tenant: String, step: DeletionStep, startedAt: Date, finishedAt: Date?, plan: String, report: String) {
        self.tenant = tenant
        self.step = step
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.plan = plan
        self.report = report
    }
}

/// The name a worker writes into the runs it starts: `host:pid`, so `tresor jobs` says where a
/// run happened and which process to look for when it is still `running`.
public enum WorkerName {
    public static var current: String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }
}
