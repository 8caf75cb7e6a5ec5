internal import CSQLite
import Foundation

// A deliberately narrow wrapper over libsqlite3: what the catalog needs, not the whole library.
// It owns the C handles (closed and finalized in `deinit`) and turns every SQLite result code
// into a `CatalogError` in one place, `SQLiteDatabase.error(_:_:doing:)`.
//
// Neither type is thread-safe on its own; `SQLiteCatalog` serialises all use of a connection.

/// Tells SQLite to copy a bound buffer before the bind call returns. The C macro
/// `SQLITE_TRANSIENT` is a cast of -1 to a function pointer, which Swift does not import.
private let transientDestructor = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One open connection to a database file.
final class SQLiteDatabase: CatalogConnection {
    private let handle: OpaquePointer

    /// Opens `path` read-write, creating the file (not its directory) if missing.
    init(path: String) throws {
        var opened: OpaquePointer?
        // FULLMUTEX is a safety net only: the caller's lock is what keeps a transaction, or a
        // statement and its `changes` count, from interleaving with another thread's.
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        // The catalog holds tenants, stores and runs: owner only. SQLite gives its -wal and -shm
        // files the mode of the database file, so creating that 0600 covers all three.
        if path != ":memory:" {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }  // a failure here is reported by sqlite3_open_v2 below
        }
        let rc = sqlite3_open_v2(path, &opened, flags, nil)
        guard rc == SQLITE_OK, let opened else {
            // SQLite hands back a handle even when opening fails; it carries the message.
            let error = Self.error(rc, opened, doing: "open catalog '\(path)'")
            sqlite3_close_v2(opened)
            throw error
        }
        handle = opened
        sqlite3_extended_result_codes(handle, 1)
    }

    deinit {
        // Statements keep their database alive, so none is left unfinalized here.
        sqlite3_close_v2(handle)
    }

    /// The one place a SQLite result code becomes a Swift error. `doing` completes
    /// "cannot ..."; the message ends with SQLite's own explanation.
    static func error(_ rc: Int32, _ db: OpaquePointer?, doing action: String) -> CatalogError {
        let reason = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        let message = "cannot \(action): \(reason)"
        switch rc & 0xff {  // the low byte is the primary code; extended codes add detail above it
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return CatalogError(
                .corrupt, message,
                hint: "move the damaged catalog file aside and run 'tresor init'; the repository holds the truth")
        case SQLITE_BUSY, SQLITE_LOCKED:
            return CatalogError(.sqlite, message, hint: "another Tresor process is holding the catalog; try again")
        case SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM:
            return CatalogError(
                .sqlite, message,
                hint: "check that the Tresor home directory exists and is writable by this user")
        case SQLITE_FULL:
            return CatalogError(.sqlite, message, hint: "free disk space where the catalog lives")
        default:
            return CatalogError(.sqlite, message)
        }
    }

    /// Throws unless `rc` is `SQLITE_OK`.
    fileprivate func check(_ rc: Int32, doing action: @autoclosure () -> String) throws {
        guard rc == SQLITE_OK else { throw Self.error(rc, handle, doing: action()) }
    }

    fileprivate func error(_ rc: Int32, doing action: String) -> CatalogError {
        Self.error(rc, handle, doing: action)
    }

    // julianday has millisecond precision; 2440587.5 is the Julian day of the Unix epoch.
    var nowMilliseconds: String { "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)" }
    func jsonStringField(_ column: String, _ field: String) -> String {
        "CASE WHEN json_valid(\(column)) THEN json_extract(\(column), '$.\(field)') END"
    }
    var lockRowSkippingLocked: String { "" }

    /// Runs one or more `;`-separated statements that take no parameters (pragmas, schema scripts).
    func exec(_ sql: String) throws {
        try check(sqlite3_exec(handle, sql, nil, nil, nil), doing: "run catalog statement")
    }

    /// Compiles one statement.
    func prepare(_ sql: String) throws -> SQLiteStatement {
        var statement: OpaquePointer?
        try check(sqlite3_prepare_v2(handle, sql, -1, &statement, nil), doing: "prepare catalog statement")
        guard let statement else {
            throw CatalogError(.sqlite, "cannot prepare catalog statement: it is empty")
        }
        return SQLiteStatement(statement, in: self)
    }

    /// Runs one statement to its end, discarding any rows, and returns how many rows it
    /// inserted, updated or deleted.
    @discardableResult
    func execute(_ sql: String, _ values: [SQLiteValue]) throws -> Int {
        let statement = try prepare(sql)
        try statement.bind(values)
        while try statement.step() {}
        return Int(sqlite3_changes64(handle))
    }

    /// Runs one statement and maps each row it returns.
    func query<Row>(_ sql: String, _ values: [SQLiteValue], row: (any CatalogRow) throws -> Row) throws -> [Row] {
        let statement = try prepare(sql)
        try statement.bind(values)
        var rows: [Row] = []
        while try statement.step() { rows.append(try row(statement)) }
        return rows
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    ///
    /// A write transaction takes the write lock up front (`BEGIN IMMEDIATE`), so a busy database
    /// makes it wait for the busy timeout instead of failing half-way when a read upgrades to a
    /// write. A read transaction (`write: false`) gives its queries one consistent snapshot.
    @discardableResult
    func transaction<T>(write: Bool, _ body: () throws -> T) throws -> T {
        try exec(write ? "BEGIN IMMEDIATE" : "BEGIN")
        do {
            let result = try body()
            try exec("COMMIT")
            return result
        } catch {
            // SQLite may already have rolled back on its own (e.g. after SQLITE_FULL).
            if sqlite3_get_autocommit(handle) == 0 { sqlite3_exec(handle, "ROLLBACK", nil, nil, nil) }
            throw error
        }
    }
}

/// One compiled statement. Rows are read through the column accessors between `step()` calls.
final class SQLiteStatement: CatalogRow {
    private let handle: OpaquePointer
    private let database: SQLiteDatabase  // keeps the connection open while the statement lives

    fileprivate init(_ handle: OpaquePointer, in database: SQLiteDatabase) {
        self.handle = handle
        self.database = database
    }

    deinit { sqlite3_finalize(handle) }

    /// Binds `values` to the statement's parameters in order; there must be one per parameter.
    func bind(_ values: [SQLiteValue]) throws {
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard values.count == expected else {
            throw CatalogError(.sqlite, "cannot bind catalog statement: it takes \(expected) values, got \(values.count)")
        }
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32 =
                switch value {
                case .null: sqlite3_bind_null(handle, index)
                case .int64(let number): sqlite3_bind_int64(handle, index, number)
                case .text(let text):
                    sqlite3_bind_text64(
                        handle, index, text, sqlite3_uint64(text.utf8.count),
                        transientDestructor, UInt8(SQLITE_UTF8))
                }
            try database.check(rc, doing: "bind catalog value \(index)")
        }
    }

    /// Advances to the next row: `true` if there is one, `false` when the statement is done.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.error(rc, doing: "run catalog statement")
        }
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    /// The column as UTF-8 text; `""` for NULL. Uses the byte count, so embedded NULs survive.
    func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }
}
