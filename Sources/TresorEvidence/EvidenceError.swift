import TresorCore

/// Why an evidence operation could not be done. A log that verifies badly is not an error: it is
/// an ``EvidenceVerification`` whose outcome is a problem found.
public typealias EvidenceError = TresorError<EvidenceErrorCode>

public enum EvidenceErrorCode: String, Sendable, FailureCode {
    /// Reading or writing the log or a key file failed.
    case io
    /// A key file is missing or not a key (exit 2: the user fixes the path or the file).
    case badKey = "bad_key"
    /// The signing key is not the one the log's last record expects: appending would break
    /// the chain.
    case wrongKey = "wrong_key"
    /// The log's last record cannot be read, so nothing can be chained onto it.
    case unreadableTail = "unreadable_tail"
    /// A payload or argument the format cannot carry.
    case badInput = "bad_input"

    public var kind: FailureKind {
        switch self {
        case .badKey, .badInput: return .usage
        case .io, .wrongKey, .unreadableTail: return .failed
        }
    }
}
