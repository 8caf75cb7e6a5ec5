import TresorCore

/// Why a PostgreSQL operation failed: the server, the connection, the WAL archive or a restore.
/// Messages never contain a DSN's password (``redactDSN(_:)``).
public typealias PostgresError = TresorError<PostgresErrorCode>

public enum PostgresErrorCode: String, Sendable, FailureCode {
    /// The user can fix it: bad DSN, bad target, no base backup, setup missing.
    case usage
    /// The server or connection failed.
    case server
    /// A WAL file of that name is archived with other content (archive_command must fail).
    case conflict
    /// A requested WAL file is not in the archive (restore_command must exit 1).
    case notFound = "not_found"
    /// Anything else: I/O, the store.
    case failed

    public var kind: FailureKind { self == .usage ? .usage : .failed }
}

/// The connection string as libpq reads it (``ConnInfo``), with the password replaced by `***`.
public func redactDSN(_ dsn: String) -> String {
    // A string libpq cannot parse is not shown at all: it may hold a password in a form no
    // rule here could find.
    (try? ConnInfo(dsn).redacted) ?? "(a connection string libpq cannot read)"
}
