extension PostgresCatalog {
    /// The PostgreSQL schema, migration by migration: entry `i` takes the catalog from version
    /// `i` to `i + 1` and matches entry `i` of ``SQLiteCatalog/migrations`` (same tables,
    /// columns and constraints; `BIGINT` for dates and ids). A new migration is written once per
    /// back end, appended to both arrays; a test refuses arrays of different lengths.
    static let migrations: [String] = [
        // 1: stores, tenants and their document roots, region approvals, job runs.
        """
        CREATE TABLE stores (
            name     TEXT PRIMARY KEY,
            url      TEXT NOT NULL,
            region   TEXT NOT NULL,
            added_at BIGINT NOT NULL
        );
        CREATE TABLE tenants (
            name          TEXT PRIMARY KEY,
            region        TEXT NOT NULL,
            store         TEXT NOT NULL REFERENCES stores (name),
            offsite_store TEXT REFERENCES stores (name),
            pg_dsn        TEXT,
            created_at    BIGINT NOT NULL,
            contract_end  BIGINT,
            hold_reason   TEXT
        );
        CREATE TABLE tenant_doc_roots (
            tenant   TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
            position BIGINT NOT NULL,
            path     TEXT NOT NULL,
            PRIMARY KEY (tenant, position)
        );
        CREATE TABLE region_approvals (
            id          BIGSERIAL PRIMARY KEY,
            tenant      TEXT NOT NULL REFERENCES tenants (name),
            store       TEXT NOT NULL REFERENCES stores (name),
            approved_by TEXT NOT NULL,
            reason      TEXT NOT NULL,
            approved_at BIGINT NOT NULL
        );
        CREATE INDEX region_approvals_by_tenant ON region_approvals (tenant, approved_at);
        CREATE TABLE runs (
            id         BIGSERIAL PRIMARY KEY,
            tenant     TEXT,
            kind       TEXT NOT NULL,
            started_at BIGINT NOT NULL,
            ended_at   BIGINT,
            status     TEXT NOT NULL,
            detail     TEXT NOT NULL
        );
        CREATE INDEX runs_by_start ON runs (started_at);
        CREATE INDEX runs_by_tenant ON runs (tenant, started_at);
        """,
        // 2: a run's status is one of RunStatus.
        """
        ALTER TABLE runs ADD CONSTRAINT runs_status_check
            CHECK (status IN ('running', 'ok', 'problem_found', 'failed'));
        """,
        // 3: post-contract deletions, one row per tenant, kept after the tenant row is gone.
        """
        CREATE TABLE deletions (
            tenant      TEXT PRIMARY KEY,
            step        TEXT NOT NULL,
            started_at  BIGINT NOT NULL,
            finished_at BIGINT,
            plan        TEXT NOT NULL,
            report      TEXT NOT NULL
        );
        """,
        // 4: which worker (host and process) started a run.
        """
        ALTER TABLE runs ADD COLUMN worker TEXT;
        """,
        // 5: job leases (see SQLiteCatalog's migration 5).
        """
        CREATE TABLE job_leases (
            owner      TEXT NOT NULL,
            job        TEXT NOT NULL,
            worker     TEXT NOT NULL,
            expires_ms BIGINT NOT NULL,
            done_at    BIGINT,
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
