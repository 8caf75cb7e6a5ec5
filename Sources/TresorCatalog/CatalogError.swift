import TresorCore

/// Why a catalog operation failed. Messages name tenants, stores and run ids, never a DSN.
public typealias CatalogError = TresorError<CatalogErrorCode>

public enum CatalogErrorCode: String, Sendable, Codable, FailureCode {
    /// The tenant, store or run named does not exist (usage).
    case notFound
    /// A tenant or store of that name already exists (usage).
    case duplicate
    /// A value the catalog does not accept: a tenant name that is no `TenantID`, an unknown
    /// run kind or status (usage).
    case invalid
    /// The database refused or failed an operation: I/O, busy, full, bad SQL (failed).
    case sqlite
    /// The PostgreSQL catalog's server refused or failed an operation, or cannot be reached (failed).
    case postgres
    /// The catalog file is damaged or is not a database (failed).
    case corrupt
    /// The catalog was written by a newer Tresor whose schema this one does not know (failed).
    case unsupportedSchema

    /// Input the user can correct is `.usage` (exit 2); everything else is `.failed` (exit 1).
    public var kind: FailureKind {
        switch self {
        case .notFound, .duplicate, .invalid: .usage
        case .sqlite, .postgres, .corrupt, .unsupportedSchema: .failed
        }
    }
}
