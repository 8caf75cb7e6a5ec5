extension SQLiteCatalog {
    /// The catalog schema as a list of migrations: entry `i` takes a catalog from version `i` to
    /// version `i + 1`. Append new entries; never edit one that has shipped, because catalogs in
    /// the field have already run it.
    ///
    /// Dates are `INTEGER` Unix milliseconds (UTC). A tenant's document roots live in their own
    /// table, one row per root, in the order given. The SQL stays plain (no SQLite-only types or
    /// functions) so the PostgreSQL catalog can follow the same shape.
    static let migrations: [String] = [
        // 1: stores, tenants and their document roots, region approvals, job runs.
        """
        CREATE TABLE stores (
            name     TEXT PRIMARY KEY,
            url      TEXT NOT NULL,
            region   TEXT NOT NULL,
            added_at INTEGER NOT NULL
        );
        CREATE TABLE tenants (
            name          TEXT PRIMARY KEY,
            region        TEXT NOT NULL,
            store         TEXT NOT NULL REFERENCES stores (name),
            offsite_store TEXT REFERENCES stores (name),
            pg_dsn        TEXT,
            created_at    INTEGER NOT NULL,
            contract_end  INTEGER,
            hold_reason   TEXT
        );
        CREATE TABLE tenant_doc_roots (
            tenant   TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            path     TEXT NOT NULL,
            PRIMARY KEY (tenant, position)
        );
        CREATE TABLE region_approvals (
            id          INTEGER PRIMARY KEY,
            tenant      TEXT NOT NULL REFERENCES tenants (name),
            store       TEXT NOT NULL REFERENCES stores (name),
            approved_by TEXT NOT NULL,
            reason      TEXT NOT NULL,
            approved_at INTEGER NOT NULL
        );
        CREATE INDEX region_approvals_by_tenant ON region_approvals (tenant, approved_at);
        CREATE TABLE runs (
            id         INTEGER PRIMARY KEY,
            tenant     TEXT,
            kind       TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            ended_at   INTEGER,
            status     TEXT NOT NULL,
            detail     TEXT NOT NULL
        );
        CREATE INDEX runs_by_start ON runs (started_at);
        CREATE INDEX runs_by_tenant ON runs (tenant, started_at);
        """,
        // 2: a run's status is one of RunStatus; the database refuses anything else. Rows of
        // version 1 were written with these four values only, so the copy keeps every row.
        """
        CREATE TABLE runs_v2 (
            id         INTEGER PRIMARY KEY,
            tenant     TEXT,
            kind       TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            ended_at   INTEGER,
            status     TEXT NOT NULL CHECK (status IN ('running', 'ok', 'problem_found', 'failed')),
            detail     TEXT NOT NULL
        );
        INSERT INTO runs_v2 (id, tenant, kind, started_at, ended_at, status, detail)
            SELECT id, tenant, kind, started_at, ended_at, status, detail FROM runs;
        DROP TABLE runs;
        ALTER TABLE runs_v2 RENAME TO runs;
        CREATE INDEX runs_by_start ON runs (started_at);
        CREATE INDEX runs_by_tenant ON runs (tenant, started_at);
        """,
        // 3: post-contract deletions in progress and done. One row per tenant, kept after its
        // tenant row is gone: it is how a rerun finishes a deletion a crash interrupted, and the
        // tombstone that tells later runs and the sweeper the tenant was deleted. It holds the
        // plan (store names and URLs, paths) and counts, never tenant content.
        """
        CREATE TABLE deletions (
            tenant      TEXT PRIMARY KEY,
            step        TEXT NOT NULL,
            started_at  INTEGER NOT NULL,
            finished_at INTEGER,
            plan        TEXT NOT NULL,
            report      TEXT NOT NULL
        );
        """,
        // 4: which worker (host and process) started a run; NULL for runs recorded before.
        """
        ALTER TABLE runs ADD COLUMN worker TEXT;
        """,
        // 5: job leases: which worker holds a job (an owner, a tenant or store or "", and a job
        // name) until when (expires_ms, the database's clock in Unix ms; 0 when released), and
        // when a worker last finished it (done_at, the installation's clock). See Catalog.claimJob.
        """
        CREATE TABLE job_leases (
            owner      TEXT NOT NULL,
            job        TEXT NOT NULL,
            worker     TEXT NOT NULL,
            expires_ms INTEGER NOT NULL,
            done_at    INTEGER,
            PRIMARY KEY (owner, job)
        );
        """,
        // 6: what tick reads to decide what is due (the newest run per kind, tenant and status)
        // from this index alone, so a tick's cost does not grow with the history's length.
        """
        CREATE INDEX runs_latest ON runs (kind, tenant, status, started_at);
        """,
    ]

    /// The schema version this build writes and understands.
    public static var latestSchemaVersion: Int { migrations.count }
}

extension SQLCatalog {
    /// Brings the schema to ``latestSchemaVersion`` in one write transaction, so a crash leaves
    /// the previous version intact and two processes opening a new catalog at once migrate it
    /// once. `schema_version` holds one row per applied migration.
    /// `migrations` is a parameter only so tests can add a version (and PostgreSQL passes its
    /// own); `serialize`, when given, runs first in the transaction to keep concurrent migrations
    /// apart where the write transaction alone does not (PostgreSQL's advisory lock).
    static func migrate(
        _ db: any CatalogConnection, to migrations: [String] = SQLiteCatalog.migrations,
        serialize: String? = nil
    ) throws {
        try db.transaction {
            if let serialize { try db.exec(serialize) }
            try db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
            let current = try schemaVersion(db)
            guard current <= migrations.count else {
                throw CatalogError(
                    .unsupportedSchema,
                    "catalog schema version \(current) is newer than this tresor understands (\(migrations.count))",
                    hint: "run a Tresor release at least as new as the one that last wrote this catalog")
            }
            for (index, script) in migrations.enumerated().dropFirst(current) {
                try db.exec(script)
                try db.execute("INSERT INTO schema_version (version) VALUES (?)", [.int64(Int64(index + 1))])
            }
        }
    }

    static func schemaVersion(_ db: any CatalogConnection) throws -> Int {
        try db.query("SELECT COALESCE(MAX(version), 0) FROM schema_version") { Int($0.int64(0)) }.first ?? 0
    }
}
