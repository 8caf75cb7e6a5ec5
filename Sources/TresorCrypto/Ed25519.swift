internal import CCrypto
import TresorCore

/// An Ed25519 signing key (RFC 8032), used to sign snapshots and manifests.
///
/// A value type holding the 32-byte private seed and the derived public key; `Sendable`, safe
/// to share across threads. Each ``signature(for:)`` loads the key into a short-lived OpenSSL
/// object (a few allocations; about 80 µs in all), so sign per snapshot, not per chunk. The seed
/// lives in an ordinary Swift array, which cannot be reliably wiped. `description` never shows
/// the seed.
public struct Ed25519PrivateKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let seed: [UInt8]
    private let derivedPublicKey: Ed25519PublicKey

    /// Generates a new key from 32 bytes of ``SecureRandom``. Cannot fail with a working libcrypto.
    public init() {
        do {
            try self.init(rawRepresentation: SecureRandom.bytes(32))
        } catch {
            fatalError("generating an Ed25519 key: \(error)")
        }
    }

    /// Loads the key whose 32-byte private seed is `rawRepresentation` (the RFC 8032 "secret
    /// key", as produced by ``rawRepresentation``) and derives its public key.
    /// Throws ``CryptoError/Code/invalidKey`` for any other length.
    public init(rawRepresentation: [UInt8]) throws {
        guard rawRepresentation.count == 32 else {
            throw CryptoError.invalidKey("an Ed25519 private key must be 32 bytes, not \(rawRepresentation.count)")
        }
        let key = try Self.load(rawRepresentation)
        defer { EVP_PKEY_free(key) }
        var publicBytes = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_get_raw_public_key(key, &publicBytes, &length) == 1, length == 32 else {
            throw CryptoError.fromOpenSSL("deriving an Ed25519 public key", code: .invalidKey)
        }
        seed = rawRepresentation
        derivedPublicKey = Ed25519PublicKey(checkedBytes: publicBytes)
    }

    /// The 32-byte private seed. Treat as secret.
    public var rawRepresentation: [UInt8] { seed }

    /// The matching public key (computed once, at initialisation).
    public var publicKey: Ed25519PublicKey { derivedPublicKey }

    /// The 64-byte Ed25519 signature of `data` (PureEdDSA: deterministic, the same key and data
    /// always give the same signature).
    public func signature(for data: [UInt8]) -> [UInt8] {
        let key: OpaquePointer
        do { key = try Self.load(seed) } catch { fatalError("loading an Ed25519 key: \(error)") }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { opensslFatal("creating an Ed25519 context") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit_ex(context, nil, nil, nil, nil, key, nil) == 1 else { opensslFatal("Ed25519 sign init") }
        return [UInt8](unsafeUninitializedCapacity: 64) { out, initialized in
            var length = 64
            let ok = withNonNullBytes(data) { bytes, count in
                EVP_DigestSign(context, out.baseAddress, &length, bytes, count)
            }
            guard ok == 1, length == 64 else { opensslFatal("Ed25519 sign") }
            initialized = 64
        }
    }

    /// Names the key by its public half; never shows the seed.
    public var description: String { "Ed25519PrivateKey(public: \(Hex.encode(derivedPublicKey.rawRepresentation)))" }

    /// Same as ``description``; never shows the seed.
    public var debugDescription: String { description }

    private static func load(_ seed: [UInt8]) throws -> OpaquePointer {
        guard
            let key = seed.withUnsafeBufferPointer({
                EVP_PKEY_new_raw_private_key_ex(nil, "ED25519", nil, $0.baseAddress, $0.count)
            })
        else { throw CryptoError.fromOpenSSL("loading an Ed25519 private key", code: .invalidKey) }
        return key
    }
}

/// An Ed25519 public key (RFC 8032), used to verify snapshot and manifest signatures.
///
/// A value type holding the 32 encoded bytes; `Sendable`, safe to share across threads. Each
/// ``isValidSignature(_:for:)`` loads the key into a short-lived OpenSSL object (a few
/// allocations; about 100 µs in all).
public struct Ed25519PublicKey: Sendable, Hashable {
    private let bytes: [UInt8]

    /// Loads a 32-byte encoded public key. Throws ``CryptoError/Code/invalidKey`` for any other
    /// length or if OpenSSL rejects it. OpenSSL does not decode the point here: an encoding
    /// that is not a curve point is accepted and then fails every verification.
    public init(rawRepresentation: [UInt8]) throws {
        guard rawRepresentation.count == 32 else {
            throw CryptoError.invalidKey("an Ed25519 public key must be 32 bytes, not \(rawRepresentation.count)")
        }
        EVP_PKEY_free(try Self.load(rawRepresentation))
        bytes = rawRepresentation
    }

    init(checkedBytes: [UInt8]) {
        bytes = checkedBytes
    }

    /// The 32-byte encoded public key.
    public var rawRepresentation: [UInt8] { bytes }

    /// Whether `signature` is a valid Ed25519 signature of `data` under this key. Returns false
    /// (never throws) for a signature that is not 64 bytes, does not verify, or is malformed.
    public func isValidSignature(_ signature: [UInt8], for data: [UInt8]) -> Bool {
        guard signature.count == 64, let key = try? Self.load(bytes) else { return false }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { opensslFatal("creating an Ed25519 context") }
        defer { EVP_MD_CTX_free(context) }
        let valid =
            EVP_DigestVerifyInit_ex(context, nil, nil, nil, nil, key, nil) == 1
            && signature.withUnsafeBufferPointer { sig in
                withNonNullBytes(data) { bytes, count in
                    EVP_DigestVerify(context, sig.baseAddress, 64, bytes, count) == 1
                }
            }
        if !valid { ERR_clear_error() }  // a bad signature is an answer, not an error to report later
        return valid
    }

    private static func load(_ bytes: [UInt8]) throws -> OpaquePointer {
        guard
            let key = bytes.withUnsafeBufferPointer({
                EVP_PKEY_new_raw_public_key_ex(nil, "ED25519", nil, $0.baseAddress, $0.count)
            })
        else { throw CryptoError.fromOpenSSL("loading an Ed25519 public key", code: .invalidKey) }
        return key
    }
}
