import TresorCore

/// Why an export failed. Messages never hold a DSN's password.
public typealias ExportError = TresorError<ExportErrorCode>

public enum ExportErrorCode: String, Sendable, FailureCode {
    /// The user can fix it: bad output name, existing file, missing source.
    case usage
    /// libarchive refused or failed (the message carries its text).
    case archive
    /// Reading a document or the database, or writing the output, failed.
    case io
    /// pg_dump or the server failed.
    case database

    public var kind: FailureKind { self == .usage ? .usage : .failed }
}
