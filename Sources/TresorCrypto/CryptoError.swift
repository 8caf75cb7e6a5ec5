internal import CCrypto
import TresorCore

/// A failure of a cryptographic operation: authentication of sealed data failed, a key had the
/// wrong shape, or OpenSSL reported an error.
///
/// Messages never contain key material or plaintext; they name the operation and, for OpenSSL
/// failures, OpenSSL's own reason string. Every case is ``FailureKind/failed``: a bad key or a
/// tampered object is a problem with stored data, not with the user's command line.
public struct CryptoError: TresorFailure {
    /// What went wrong, for callers that react differently to each.
    public enum Code: String, Sendable, Hashable {
        /// Sealed data did not verify: it was modified, truncated, or sealed under another key or
        /// with other associated data.
        case authenticationFailed
        /// A key had the wrong length or could not be loaded.
        case invalidKey
        /// OpenSSL reported an error not covered by the other codes.
        case openssl
    }

    /// What went wrong.
    public let code: Code
    /// One lowercase line naming the failed operation, without secrets.
    public let message: String
    /// How to fix it, when there is something the user can do.
    public let hint: String?

    /// Always ``FailureKind/failed``.
    public var kind: FailureKind { .failed }

    init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    /// Sealed data that failed verification; `detail` says how, without revealing anything secret.
    static func authenticationFailed(_ detail: String) -> CryptoError {
        CryptoError(.authenticationFailed, "sealed data failed authentication: \(detail)")
    }

    /// A key of the wrong shape.
    static func invalidKey(_ message: String) -> CryptoError {
        CryptoError(.invalidKey, message)
    }

    /// The one place that turns OpenSSL's error queue into a `CryptoError`.
    ///
    /// Drains the calling thread's OpenSSL error queue (so a stale error never leaks into a later
    /// report) and keeps the oldest entry's reason, which names the root cause. `code` lets the
    /// caller classify the failure (for example ``Code/invalidKey`` when loading a key).
    static func fromOpenSSL(_ operation: String, code: Code = .openssl) -> CryptoError {
        var first: UInt = 0
        while case let e = ERR_get_error(), e != 0 {
            if first == 0 { first = e }
        }
        guard first != 0 else {
            return CryptoError(code, "\(operation) failed (openssl reported no reason)")
        }
        let reason = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buf -> String in
            ERR_error_string_n(first, buf.baseAddress, buf.count)
            return String(cString: buf.baseAddress!)
        }
        return CryptoError(code, "\(operation) failed: \(reason)")
    }
}

/// Stops the process for an OpenSSL failure that leaves no safe way to continue (the random
/// generator or a built-in algorithm is unavailable). Used only by operations whose signature
/// cannot throw because, with a working libcrypto, they cannot fail.
func opensslFatal(_ operation: String) -> Never {
    fatalError(CryptoError.fromOpenSSL(operation).message)
}
