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
