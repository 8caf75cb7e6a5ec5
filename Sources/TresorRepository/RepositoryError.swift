import TresorCore

/// Why a repository operation failed.
public struct RepositoryError: TresorFailure {
    public enum Code: String, Sendable {
        /// The user can fix it: wrong key, unknown snapshot, bad path.
        case usage
        /// An object is damaged or inconsistent.
        case corrupt
        /// Something else failed (I/O underneath, a store).
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
