import TresorCore

/// Why an export failed. Messages never hold a DSN's password.
public struct ExportError: TresorFailure {
    public enum Code: String, Sendable {
        /// The user can fix it: bad output name, existing file, missing source.
        case usage
        /// libarchive refused or failed (the message carries its text).
        case archive
        /// Reading a document or the database, or writing the output, failed.
        case io
        /// pg_dump or the server failed.
        case database
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
