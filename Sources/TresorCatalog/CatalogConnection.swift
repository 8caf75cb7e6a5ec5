import Foundation

// What the catalog needs from a SQL database, so one implementation (``SQLCatalog``) serves
// both back ends: SQLite through `SQLiteDatabase`, PostgreSQL through `PostgresConnection`.
// Statements are written once with `?` parameters in SQL both databases accept (the PostgreSQL
// connection numbers the parameters); only the schema differs (see the two migration arrays).

/// A value bound to a `?` parameter. Dates are bound as Unix milliseconds (see `Date+Millis`).
enum SQLiteValue {
    case null
    case int64(Int64)
    case text(String)

    init(_ text: String?) { self = text.map(SQLiteValue.text) ?? .null }
    init(_ number: Int64?) { self = number.map(SQLiteValue.int64) ?? .null }
}

/// The parameter type of every catalog statement, whatever the database.
typealias CatalogValue = SQLiteValue

/// One result row, read by column index.
protocol CatalogRow {
    func int64(_ column: Int32) -> Int64
    func optionalInt64(_ column: Int32) -> Int64?
    /// The column as text; `""` for NULL.
    func text(_ column: Int32) -> String
    func optionalText(_ column: Int32) -> String?
}

/// One connection to the catalog's database. Not thread-safe: ``SQLCatalog`` serialises all use.
protocol CatalogConnection: AnyObject {
    /// Runs `;`-separated statements without parameters (schema scripts).
    func exec(_ sql: String) throws
    /// Runs one statement, discarding rows; returns how many rows it inserted, updated or deleted.
    @discardableResult
    func execute(_ sql: String, _ values: [CatalogValue]) throws -> Int
    /// Runs one statement and maps each row it returns.
    func query<Row>(_ sql: String, _ values: [CatalogValue], row: (any CatalogRow) throws -> Row) throws -> [Row]
    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws. A write
    /// transaction takes the database's write lock up front where the database has one.
    @discardableResult
    func transaction<T>(write: Bool, _ body: () throws -> T) throws -> T
    /// An SQL expression for the database server's clock in Unix milliseconds (lease expiry).
    var nowMilliseconds: String { get }
    /// Appended to a SELECT of one lease row in a write transaction: PostgreSQL's `FOR UPDATE
    /// SKIP LOCKED`; empty for SQLite, whose write transaction already excludes other writers.
    var lockRowSkippingLocked: String { get }
    /// An SQL expression for the string member `field` of the JSON object in text `column`,
    /// NULL when the column is not such an object or lacks the member; never an error.
    func jsonStringField(_ column: String, _ field: String) -> String
}

extension CatalogConnection {
    @discardableResult
    func execute(_ sql: String) throws -> Int { try execute(sql, []) }

    func query<Row>(_ sql: String, row: (any CatalogRow) throws -> Row) throws -> [Row] { try query(sql, [], row: row) }

    @discardableResult
    func transaction<T>(_ body: () throws -> T) throws -> T { try transaction(write: true, body) }
}
