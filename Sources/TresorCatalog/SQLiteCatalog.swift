import Foundation
import TresorCore

/// The catalog over a SQL database: every ``Catalog`` method, written once for both back ends.
/// ``SQLiteCatalog`` (embedded, one file) and ``PostgresCatalog`` (a fleet's shared catalog)
/// only open the connection and bring its schema up to date.
///
/// One connection, used under a lock, so calls from many threads are serialised in this
/// process; other processes (cron's `tick`, an operator's CLI, other hosts' workers) share the
/// database through its own locking. Every multi-statement write runs in one transaction. Calls
/// block the calling thread on I/O: call them off the cooperative pool when the caller is async
/// and the call may wait.
public class SQLCatalog: Catalog, @unchecked Sendable {
    // @unchecked: `database` is only touched while `lock` is held.
    private let lock = NSLock()
    private let database: any CatalogConnection
    /// Written into every run this catalog starts: ``WorkerName/current`` unless told otherwise.
    public let worker: String

    init(connection: any CatalogConnection, worker: String) {
        self.worker = worker
        database = connection
    }

    func locked<T>(_ body: (any CatalogConnection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(database)
    }

    // MARK: Stores

    private static let storeColumns = "name, url, region, added_at"

    private static func store(_ row: any CatalogRow) -> StoreRecord {
        StoreRecord(name: row.text(0), url: row.text(1), region: row.text(2), addedAt: row.date(3))
    }

    public func addStore(_ store: StoreRecord) throws {
        let inserted = try locked { db in
            try db.execute(
                """
                INSERT INTO stores (\(Self.storeColumns)) VALUES (?, ?, ?, ?)
                ON CONFLICT (name) DO NOTHING
                """, [.text(store.name), .text(store.url), .text(store.region), SQLiteValue(store.addedAt)])
        }
        guard inserted == 1 else {
            throw CatalogError(.duplicate, "store '\(store.name)' already exists", hint: "tresor store list")
        }
    }

    public func store(named name: String) throws -> StoreRecord? {
        try locked { db in
            try db.query("SELECT \(Self.storeColumns) FROM stores WHERE name = ?", [.text(name)], row: Self.store).first
        }
    }

    public func stores() throws -> [StoreRecord] {
        try locked { db in
            try db.query("SELECT \(Self.storeColumns) FROM stores ORDER BY name", row: Self.store)
        }
    }

    // MARK: Tenants

    private static let tenantColumns = "name, region, store, offsite_store, pg_dsn, created_at, contract_end, hold_reason"

    private static func tenant(_ row: any CatalogRow) -> TenantRecord {
        TenantRecord(
            name: row.text(0), region: row.text(1), store: row.text(2), offsiteStore: row.optionalText(3),
            pgDSN: row.optionalText(4), docRoots: [], createdAt: row.date(5), contractEnd: row.optionalDate(6),
            holdReason: row.optionalText(7))
    }

    public func addTenant(_ tenant: TenantRecord) throws {
        guard TenantID.isValid(tenant.name) else {
            throw CatalogError(
                .invalid, "invalid tenant name '\(tenant.name)'",
                hint: "use 1-\(TenantID.maxLength) lowercase letters, digits, '-' or '_', not starting with '-'")
        }
        try locked { db in
            try db.transaction {
                try Self.requireStores(of: tenant, in: db)
                let inserted = try db.execute(
                    """
                    INSERT INTO tenants (\(Self.tenantColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO NOTHING
                    """, Self.tenantValues(tenant))
                guard inserted == 1 else {
                    throw CatalogError(.duplicate, "tenant '\(tenant.name)' already exists", hint: "tresor tenant list")
                }
                try Self.insertDocRoots(of: tenant, in: db)
            }
        }
    }

    public func updateTenant(_ tenant: TenantRecord) throws {
        try locked { db in
            try db.transaction {
                try Self.requireTenant(tenant.name, in: db)
                try Self.requireStores(of: tenant, in: db)
                try db.execute(
                    """
                    UPDATE tenants SET region = ?, store = ?, offsite_store = ?, pg_dsn = ?,
                        created_at = ?, contract_end = ?, hold_reason = ?
                    WHERE name = ?
                    """, Array(Self.tenantValues(tenant).dropFirst()) + [.text(tenant.name)])
                try db.execute("DELETE FROM tenant_doc_roots WHERE tenant = ?", [.text(tenant.name)])
                try Self.insertDocRoots(of: tenant, in: db)
            }
        }
    }

    public func tenant(named name: String) throws -> TenantRecord? {
        try locked { db in
            try db.transaction(write: false) {
                guard
                    var tenant = try db.query(
                        "SELECT \(Self.tenantColumns) FROM tenants WHERE name = ?", [.text(name)], row: Self.tenant
                    ).first
                else { return nil }
                tenant.docRoots = try db.query(
                    "SELECT path FROM tenant_doc_roots WHERE tenant = ? ORDER BY position", [.text(name)]
                ) { $0.text(0) }
                return tenant
            }
        }
    }

    public func tenants() throws -> [TenantRecord] {
        try locked { db in
            try db.transaction(write: false) {
                var roots: [String: [String]] = [:]
                for (tenant, path) in try db.query(
                    "SELECT tenant, path FROM tenant_doc_roots ORDER BY tenant, position", row: { ($0.text(0), $0.text(1)) }
                ) {
                    roots[tenant, default: []].append(path)
                }
                return try db.query("SELECT \(Self.tenantColumns) FROM tenants ORDER BY name") { row in
                    var tenant = Self.tenant(row)
                    tenant.docRoots = roots[tenant.name] ?? []
                    return tenant
                }
            }
        }
    }

    /// The values of ``tenantColumns``, in order.
    private static func tenantValues(_ tenant: TenantRecord) -> [SQLiteValue] {
        [
            .text(tenant.name), .text(tenant.region), .text(tenant.store), SQLiteValue(tenant.offsiteStore),
            SQLiteValue(tenant.pgDSN), SQLiteValue(tenant.createdAt), SQLiteValue(tenant.contractEnd),
            SQLiteValue(tenant.holdReason),
        ]
    }

    private static func insertDocRoots(of tenant: TenantRecord, in db: any CatalogConnection) throws {
        for (position, path) in tenant.docRoots.enumerated() {
            try db.execute(
                "INSERT INTO tenant_doc_roots (tenant, position, path) VALUES (?, ?, ?)",
                [.text(tenant.name), .int64(Int64(position)), .text(path)])
        }
    }

    /// The foreign keys would refuse a missing store too, but with SQLite's anonymous
    /// "FOREIGN KEY constraint failed"; this names the store and is a usage error.
    private static func requireStores(of tenant: TenantRecord, in db: any CatalogConnection) throws {
        for name in [tenant.store, tenant.offsiteStore].compactMap({ $0 }) {
            try requireStore(name, in: db)
        }
    }

    private static func requireStore(_ name: String, in db: any CatalogConnection) throws {
        guard try exists("SELECT 1 FROM stores WHERE name = ?", name, in: db) else {
            throw CatalogError(
                .notFound, "store '\(name)' does not exist",
                hint: "tresor store add \(name) --url URL --region REGION")
        }
    }

    private static func exists(_ sql: String, _ key: String, in db: any CatalogConnection) throws -> Bool {
        try !db.query(sql, [.text(key)]) { _ in true }.isEmpty
    }

    private static func requireTenant(_ name: String, in db: any CatalogConnection) throws {
        guard try exists("SELECT 1 FROM tenants WHERE name = ?", name, in: db) else {
            throw CatalogError(.notFound, "tenant '\(name)' does not exist", hint: "tresor tenant list")
        }
    }

    // MARK: Region approvals

    public func addRegionApproval(_ approval: RegionApproval) throws {
        try locked { db in
            try db.transaction {
                try Self.requireTenant(approval.tenant, in: db)
                try Self.requireStore(approval.store, in: db)
                try db.execute(
                    """
                    INSERT INTO region_approvals (tenant, store, approved_by, reason, approved_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                    [
                        .text(approval.tenant), .text(approval.store), .text(approval.approvedBy),
                        .text(approval.reason), SQLiteValue(approval.approvedAt),
                    ])
            }
        }
    }

    public func regionApprovals(tenant: String) throws -> [RegionApproval] {
        try locked { db in
            try db.query(
                """
                SELECT tenant, store, approved_by, reason, approved_at FROM region_approvals
                WHERE tenant = ? ORDER BY approved_at, id
                """, [.text(tenant)]
            ) { row in
                RegionApproval(
                    tenant: row.text(0), store: row.text(1), approvedBy: row.text(2),
                    reason: row.text(3), approvedAt: row.date(4))
            }
        }
    }

    // MARK: Runs

    public func startRun(kind: RunKind, tenant: String?, at start: Date) throws -> Int64 {
        try locked { db in
            let ids = try db.query(
                """
                INSERT INTO runs (tenant, kind, started_at, status, detail, worker) VALUES (?, ?, ?, ?, '{}', ?)
                RETURNING id
                """,
                [
                    SQLiteValue(tenant), .text(kind.rawValue), SQLiteValue(start), .text(RunRecord.runningStatus.rawValue),
                    .text(worker),
                ]
            ) { $0.int64(0) }
            guard let id = ids.first else { throw CatalogError(.sqlite, "cannot start run: the catalog returned no id") }
            return id
        }
    }

    public func finishRun(id: Int64, at end: Date, status: RunStatus, detail: String) throws {
        let updated = try locked { db in
            try db.execute(
                "UPDATE runs SET ended_at = ?, status = ?, detail = ? WHERE id = ?",
                [SQLiteValue(end), .text(status.rawValue), .text(detail), .int64(id)])
        }
        guard updated == 1 else { throw CatalogError(.notFound, "run \(id) does not exist") }
    }

    public func latestRuns(kinds: Set<RunKind>, statuses: Set<RunStatus>) throws -> [LatestRun] {
        guard !kinds.isEmpty, !statuses.isEmpty else { return [] }
        let kindList = kinds.map(\.rawValue).sorted()
        let statusList = statuses.map(\.rawValue).sorted()
        let marks = { (n: Int) in Array(repeating: "?", count: n).joined(separator: ", ") }
        let values = (kindList + statusList).map { SQLiteValue.text($0) }
        // Both read the index runs_latest (schema 5) alone, never the rows: the history's length
        // costs index entries, not row reads. Runs without a tenant are few (ticks excluded by
        // kind); of those, only store-clean runs need their detail, for the store.
        return try locked { db in
            let rows = try db.query(
                """
                SELECT kind, tenant, status, max(started_at), 0 FROM runs
                WHERE kind IN (\(marks(kindList.count))) AND status IN (\(marks(statusList.count))) AND tenant IS NOT NULL
                GROUP BY kind, tenant, status
                UNION ALL
                SELECT kind, CASE WHEN kind = 'store-clean' THEN \(db.jsonStringField("detail", "store")) END, status, max(started_at), 1
                FROM runs
                WHERE kind IN (\(marks(kindList.count))) AND status IN (\(marks(statusList.count))) AND tenant IS NULL
                GROUP BY 1, 2, 3
                """, values + values
            ) { row in
                (kind: row.text(0), owner: row.optionalText(1), status: row.text(2), startedAt: row.date(3), tenantless: row.int64(4) == 1)
            }
            return try rows.map { r in
                guard let kind = RunKind(rawValue: r.kind), let status = RunStatus(rawValue: r.status) else {
                    throw CatalogError(
                        .corrupt, "a run has unknown kind '\(r.kind)' or status '\(r.status)'",
                        hint: "run a Tresor release at least as new as the one that wrote it")
                }
                return LatestRun(
                    kind: kind, tenant: r.tenantless ? nil : r.owner, store: r.tenantless ? r.owner : nil,
                    status: status, startedAt: r.startedAt)
            }
        }
    }

    /// A run row as a ``RunRecord``; a kind or status this build does not know is reported.
    private static func runRecord(
        id: Int64, tenant: String?, kind: String, startedAt: Date, endedAt: Date?, status: String,
        detail: String, worker: String?
    ) throws -> RunRecord {
        // The status column only holds RunStatus values (schema 2); a kind from a newer
        // tresor, or an edited file, is reported rather than read as something else.
        guard let k = RunKind(rawValue: kind), let s = RunStatus(rawValue: status) else {
            throw CatalogError(
                .corrupt, "run \(id) has unknown kind '\(kind)' or status '\(status)'",
                hint: "run a Tresor release at least as new as the one that wrote it")
        }
        return RunRecord(id: id, tenant: tenant, kind: k, startedAt: startedAt, endedAt: endedAt, status: s, detail: detail, worker: worker)
    }

    public func runs(tenant: String?, kind: RunKind?, limit: Int) throws -> [RunRecord] {
        var conditions: [String] = []
        var values: [SQLiteValue] = []
        if let tenant {
            conditions.append("tenant = ?")
            values.append(.text(tenant))
        }
        if let kind {
            conditions.append("kind = ?")
            values.append(.text(kind.rawValue))
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        // A negative LIMIT means "no limit" to SQLite and is an error to PostgreSQL; the protocol says none.
        values.append(.int64(Int64(max(limit, 0))))
        return try locked { db in
            try db.query(
                """
                SELECT id, tenant, kind, started_at, ended_at, status, detail, worker FROM runs
                \(filter) ORDER BY started_at DESC, id DESC LIMIT ?
                """, values
            ) { row in
                (
                    id: row.int64(0), tenant: row.optionalText(1), kind: row.text(2), startedAt: row.date(3),
                    endedAt: row.optionalDate(4), status: row.text(5), detail: row.text(6), worker: row.optionalText(7)
                )
            }.map { r in
                try Self.runRecord(
                    id: r.id, tenant: r.tenant, kind: r.kind, startedAt: r.startedAt, endedAt: r.endedAt,
                    status: r.status, detail: r.detail, worker: r.worker)
            }
        }
    }

    // MARK: Deletions

    private static let deletionColumns = "tenant, step, started_at, finished_at, plan, report"

    private static func deletion(_ row: any CatalogRow) throws -> DeletionRecord {
        guard let step = DeletionStep(rawValue: row.text(1)) else {
            throw CatalogError(
                .corrupt, "deletion of '\(row.text(0))' has unknown step '\(row.text(1))'",
                hint: "run a Tresor release at least as new as the one that wrote it")
        }
        return DeletionRecord(
            tenant: row.text(0), step: step, startedAt: row.date(2), finishedAt: row.optionalDate(3),
            plan: row.text(4), report: row.text(5))
    }

    public func beginDeletion(tenant: String, plan: String, at: Date) throws -> DeletionRecord {
        try locked { db in
            try db.transaction {
                try db.execute(
                    """
                    INSERT INTO deletions (\(Self.deletionColumns)) VALUES (?, ?, ?, NULL, ?, '{}')
                    ON CONFLICT (tenant) DO NOTHING
                    """, [.text(tenant), .text(DeletionStep.planned.rawValue), SQLiteValue(at), .text(plan)])
                guard
                    let row = try db.query(
                        "SELECT \(Self.deletionColumns) FROM deletions WHERE tenant = ?",
                        [.text(tenant)], row: Self.deletion
                    ).first
                else {
                    throw CatalogError(.sqlite, "cannot record the deletion of '\(tenant)': the row is missing after its insert")
                }
                return row
            }
        }
    }

    public func deletion(tenant: String) throws -> DeletionRecord? {
        try locked { db in
            try db.query("SELECT \(Self.deletionColumns) FROM deletions WHERE tenant = ?", [.text(tenant)], row: Self.deletion).first
        }
    }

    public func deletions() throws -> [DeletionRecord] {
        try locked { db in
            try db.query("SELECT \(Self.deletionColumns) FROM deletions ORDER BY tenant", row: Self.deletion)
        }
    }

    public func updateDeletion(tenant: String, step: DeletionStep, report: String, finishedAt: Date?) throws {
        let updated = try locked { db in
            try db.execute(
                "UPDATE deletions SET step = ?, report = ?, finished_at = ? WHERE tenant = ?",
                [.text(step.rawValue), .text(report), SQLiteValue(finishedAt), .text(tenant)])
        }
        guard updated == 1 else { throw CatalogError(.notFound, "no deletion of '\(tenant)' is recorded") }
    }

    private static let tenantTables = [("runs", "tenant"), ("region_approvals", "tenant"), ("tenant_doc_roots", "tenant"), ("tenants", "name")]

    public func purgeTenantRows(_ tenant: String) throws -> Int {
        try locked { db in
            try db.transaction {
                var removed = 0
                for (table, column) in Self.tenantTables {
                    removed += try db.execute("DELETE FROM \(table) WHERE \(column) = ?", [.text(tenant)])
                }
                return removed
            }
        }
    }

    public func pruneRuns(tenant: String?, endedBefore cutoff: Date, dryRun: Bool) throws -> [RunKind: Int] {
        try locked { db in
            // Whose runs: the tenant's, or (nil) the installation's own (ticks, deletions, sweeps,
            // controls, store cleaning), whose newest is kept per kind and, for store cleaning, per store.
            func owner(_ alias: String) -> String { tenant == nil ? "\(alias)tenant IS NULL" : "\(alias)tenant = ?" }
            let sameStore =
                tenant != nil ? "" : " AND COALESCE(\(db.jsonStringField("m.detail", "store")), '') = COALESCE(\(db.jsonStringField("n.detail", "store")), '')"
            // Same order as `runs` (and tick): newest start first, ties by id.
            let condition = """
                \(owner("")) AND ended_at IS NOT NULL AND ended_at < ? AND status != 'running' AND id NOT IN (
                    SELECT n.id FROM runs n WHERE \(owner("n.")) AND n.status IN ('ok', 'problem_found') AND NOT EXISTS (
                        SELECT 1 FROM runs m WHERE \(owner("m.")) AND m.kind = n.kind AND m.status IN ('ok', 'problem_found')\(sameStore)
                        AND (m.started_at > n.started_at OR (m.started_at = n.started_at AND m.id > n.id))))
                """
            // Plain `?` placeholders, one value each (PostgreSQL's connection numbers them in order).
            let who: [SQLiteValue] = tenant.map { [.text($0)] } ?? []
            let values: [SQLiteValue] = who + [SQLiteValue(cutoff)] + who + who
            var counts: [RunKind: Int] = [:]
            for (kind, count) in try db.query(
                "SELECT kind, COUNT(*) FROM runs WHERE \(condition) GROUP BY kind", values,
                row: {
                    ($0.text(0), Int($0.int64(1)))
                })
            {
                guard let k = RunKind(rawValue: kind) else {
                    throw CatalogError(
                        .corrupt, "run kind '\(kind)' is unknown to this build; job history of \(tenant.map { "'\($0)'" } ?? "the installation") left as it is")
                }
                counts[k] = count
            }
            if !dryRun { _ = try db.execute("DELETE FROM runs WHERE \(condition)", values) }
            return counts
        }
    }

    public func tenantRowCount(_ tenant: String) throws -> Int {
        try locked { db in
            try Self.tenantTables.reduce(0) { sum, t in
                sum + Int(try db.query("SELECT COUNT(*) FROM \(t.0) WHERE \(t.1) = ?", [.text(tenant)]) { $0.int64(0) }.first ?? 0)
            }
        }
    }
}
