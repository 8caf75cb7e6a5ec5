import Foundation

/// The fleet's catalog: one PostgreSQL database shared by every worker host's `tresor tick`,
/// selected by `catalog = "postgresql://..."` in `tresor.toml`.
///
/// Same behaviour as the embedded ``SQLiteCatalog`` (the same statements, ``SQLCatalog``), with
/// the schema of ``migrations``. Due jobs are handed out with leases (``Catalog/claimJob(_:worker:lease:notDoneSince:)``)
/// whose claim locks the lease row `FOR UPDATE SKIP LOCKED` and whose expiry is the server's
/// clock, so workers on hosts with different clocks agree on when a lease ran out.
public final class PostgresCatalog: SQLCatalog, @unchecked Sendable {
    /// Connects to `dsn` and migrates the schema to ``latestSchemaVersion``. Concurrent first
    /// opens migrate once (an advisory lock keeps them apart). Errors never repeat the password.
    public init(dsn: String, worker: String = WorkerName.current) throws {
        let connection = try PostgresConnection(dsn: dsn, applicationName: "tresor-catalog")
        try Self.migrate(
            connection, to: Self.migrations,
            serialize: "SELECT pg_advisory_xact_lock(7415726431)")  // any constant, the same in every tresor
        super.init(connection: connection, worker: worker)
    }

    /// The schema version of the open catalog: ``latestSchemaVersion`` once `init` has returned.
    public func schemaVersion() throws -> Int {
        try locked { try Self.schemaVersion($0) }
    }

    /// Whether `text` names a PostgreSQL catalog (a `postgresql://` or `postgres://` URL) rather
    /// than a SQLite file.
    public static func isDSN(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }
}
