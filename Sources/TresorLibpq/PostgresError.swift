import TresorCore

/// Why a PostgreSQL operation failed: the server, the connection, the WAL archive or a restore.
/// Messages never contain a DSN's password (``redactDSN(_:)``).
public struct PostgresError: TresorFailure {
    public enum Code: String, Sendable {
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
    }

    public let code: Code
    public let message: String
    public let hint: String?

    public var kind: FailureKind { code == .usage ? .usage : .failed }

    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }
}

/// The connection string as libpq reads it (``ConnInfo``), with the password replaced by `***`.
public func redactDSN(_ dsn: String) -> String {
    // A string libpq cannot parse is not shown at all: it may hold a password in a form no
    // rule here could find.
    (try? ConnInfo(dsn).redacted) ?? "(a connection string libpq cannot read)"
}
