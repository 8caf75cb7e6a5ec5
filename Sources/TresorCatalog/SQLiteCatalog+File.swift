import Foundation

/// The embedded catalog: one SQLite file in the tresor home.
///
/// Other processes on the host share the file through SQLite's WAL mode and wait up to 5
/// seconds for each other's writes.
public final class SQLiteCatalog: SQLCatalog, @unchecked Sendable {
    /// Opens the catalog at `path`, creating the file if missing (its directory must exist),
    /// and migrates its schema to ``latestSchemaVersion``. Throws `.unsupportedSchema` if a newer
    /// Tresor wrote it, `.corrupt` if it is not a SQLite database.
    public init(path: String, worker: String = WorkerName.current) throws {
        let database = try SQLiteDatabase(path: path)
        // busy_timeout first: switching to WAL needs a lock another process may hold.
        try database.exec("PRAGMA busy_timeout = 5000")
        try database.exec("PRAGMA journal_mode = WAL")
        try database.exec("PRAGMA foreign_keys = ON")  // per connection, outside any transaction
        try Self.migrate(database)
        super.init(connection: database, worker: worker)
    }

    /// The schema version of the open catalog: ``latestSchemaVersion`` once `init` has returned.
    public func schemaVersion() throws -> Int {
        try locked { try Self.schemaVersion($0) }
    }
}
