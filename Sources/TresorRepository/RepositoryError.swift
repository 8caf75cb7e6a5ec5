import TresorCore

/// Why a repository operation failed.
public typealias RepositoryError = TresorError<RepositoryErrorCode>

public enum RepositoryErrorCode: String, Sendable, FailureCode {
    /// The user can fix it: wrong key, unknown snapshot, bad path.
    case usage
    /// An object is damaged or inconsistent.
    case corrupt
    /// Something else failed (I/O underneath, a store).
    case failed

    public var kind: FailureKind { self == .usage ? .usage : .failed }
}

extension RepositoryError {
    /// Whether `error` says stored bytes are damaged (as opposed to a store that could not be
    /// reached or refused access, which is a failed job, not a finding): a ``RepositoryError``
    /// with code ``Code/corrupt``, or a parser that ran off the end of authenticated bytes.
    public static func isDamage(_ error: Error) -> Bool {
        if let e = error as? RepositoryError { return e.code == .corrupt }
        return error is ByteReader.Truncated || error is ZstdError
    }

    /// The message of a damage error, without its type's decoration.
    public static func describe(_ error: Error) -> String {
        (error as? any TresorFailure)?.message ?? "\(error)"
    }
}
