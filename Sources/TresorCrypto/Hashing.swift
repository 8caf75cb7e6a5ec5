internal import CCrypto
import TresorCore

// Algorithms are fetched from the default provider once per process. Fetched EVP_MD / EVP_MAC
// objects are immutable and reference-counted, so sharing them across threads is safe; Swift
// initialises globals exactly once, thread-safely. Using explicitly fetched algorithms (rather
// than `EVP_sha256()`) avoids OpenSSL 3's implicit fetch on every context initialisation.
nonisolated(unsafe) let sha256Digest: OpaquePointer = {
    guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { opensslFatal("loading SHA-256") }
    return md
}()

nonisolated(unsafe) let hmacAlgorithm: OpaquePointer = {
    guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { opensslFatal("loading HMAC") }
    return mac
}()

/// Calls `body` with a pointer to `bytes` that is never nil, even for an empty array, because
/// some OpenSSL entry points treat a NULL pointer differently from an empty buffer.
@inline(__always)
func withNonNullBytes<R>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>, Int) throws -> R) rethrows -> R {
    if bytes.isEmpty {
        var zero: UInt8 = 0
        return try withUnsafePointer(to: &zero) { try body($0, 0) }
    }
    return try bytes.withUnsafeBufferPointer { try body($0.baseAddress!, $0.count) }
}

/// A C string that stays valid for the whole process, for OSSL_PARAM keys and names (an
/// implicit String-to-pointer conversion would only be valid during a single call).
@inline(__always)
func cString(_ s: StaticString) -> UnsafeMutablePointer<CChar> {
    UnsafeMutableRawPointer(mutating: s.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// Runs `body` with a 32-byte stack buffer and builds an ``ObjectID`` from what it wrote.
@inline(__always)
func makeObjectID(_ body: (UnsafeMutablePointer<UInt8>) -> Void) -> ObjectID {
    withUnsafeTemporaryAllocation(byteCount: ObjectID.byteCount, alignment: 8) { raw in
        body(raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
        return ObjectID(bytes: UnsafeRawBufferPointer(raw))
    }
}

/// One-shot SHA-256 (FIPS 180-4), used for pack and snapshot ids.
///
/// Safe from any thread. Costs one pass over the data at OpenSSL's SHA-256 speed (SHA-NI where
/// the CPU has it); the digest lives on the stack, OpenSSL allocates one short-lived context.
public enum SHA256 {
    /// The SHA-256 digest of `data`.
    public static func hash(_ data: UnsafeRawBufferPointer) -> ObjectID {
        makeObjectID { out in
            var length: UInt32 = 0
            guard EVP_Digest(data.baseAddress, data.count, out, &length, sha256Digest, nil) == 1,
                length == 32
            else { opensslFatal("SHA-256") }
        }
    }

    /// The SHA-256 digest of `data`.
    public static func hash(_ data: [UInt8]) -> ObjectID {
        data.withUnsafeBytes { hash($0) }
    }
}

/// Streaming SHA-256: feed data in pieces with ``update(_:)-(UnsafeRawBufferPointer)``, then
/// ``finalize()``. The digest equals ``SHA256/hash(_:)-([UInt8])`` of the concatenated pieces.
///
/// Not thread-safe: use one instance per thread (it is deliberately not `Sendable`). Owns one
/// OpenSSL digest context, allocated in `init`, reused across digests and freed in `deinit`;
/// updates allocate nothing.
public final class SHA256Hasher {
    private let context: OpaquePointer

    /// A hasher with no data fed yet. Allocates one OpenSSL context.
    public init() {
        guard let context = EVP_MD_CTX_new() else { opensslFatal("creating a SHA-256 context") }
        self.context = context
        guard EVP_DigestInit_ex2(context, sha256Digest, nil) == 1 else { opensslFatal("SHA-256 init") }
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Appends `data` to the message being hashed. Allocates nothing.
    public func update(_ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        guard EVP_DigestUpdate(context, data.baseAddress, data.count) == 1 else { opensslFatal("SHA-256 update") }
    }

    /// Appends `data` to the message being hashed. Allocates nothing.
    public func update(_ data: [UInt8]) {
        data.withUnsafeBytes { update($0) }
    }

    /// Returns the digest of everything fed since creation or the previous `finalize()`, and
    /// resets the hasher to the empty message so it can be reused without reallocation.
    public func finalize() -> ObjectID {
        let id = makeObjectID { out in
            var length: UInt32 = 0
            guard EVP_DigestFinal_ex(context, out, &length) == 1, length == 32 else { opensslFatal("SHA-256 final") }
        }
        guard EVP_DigestInit_ex2(context, sha256Digest, nil) == 1 else { opensslFatal("SHA-256 init") }
        return id
    }
}

/// HMAC-SHA-256 (RFC 2104) under one fixed key, used for keyed chunk ids.
///
/// Not thread-safe: use one instance per thread (it is deliberately not `Sendable`). The key is
/// set up once in `init` (OpenSSL precomputes the inner and outer padded-key states); each
/// ``mac(_:)-(UnsafeRawBufferPointer)`` call re-initialises the same OpenSSL context from them, so
/// it allocates nothing in Swift (OpenSSL copies two small digest states) and runs at SHA-256
/// speed plus about two compression-function calls (~0.3 µs). OpenSSL wipes and frees the key in
/// `deinit`.
public final class HMACSHA256 {
    private let context: OpaquePointer

    /// Sets up the MAC under `key` (any length; keys longer than 64 bytes are hashed first, as
    /// RFC 2104 specifies). Allocates one OpenSSL context.
    public init(key: [UInt8]) {
        guard let context = EVP_MAC_CTX_new(hmacAlgorithm) else { opensslFatal("creating an HMAC context") }
        self.context = context
        let ok = withNonNullBytes(key) { keyBytes, keyCount in
            // OpenSSL only reads the name (it copies what it needs), so the cast is sound.
            var params = [
                OSSL_PARAM_construct_utf8_string(cString("digest"), cString("SHA256"), 0),
                OSSL_PARAM_construct_end(),
            ]
            return EVP_MAC_init(context, keyBytes, keyCount, &params)
        }
        guard ok == 1 else { opensslFatal("HMAC-SHA-256 key setup") }
    }

    deinit {
        EVP_MAC_CTX_free(context)
    }

    /// The HMAC-SHA-256 of `data` under this instance's key.
    public func mac(_ data: UnsafeRawBufferPointer) -> ObjectID {
        begin()
        update(data)
        return finish()
    }

    /// Starts a MAC fed piece by piece with ``update(_:)`` and ended by ``finish()`` (forgetting
    /// any unfinished one).
    public func begin() {
        // A NULL key re-initialises the context with the key given in `init`.
        guard EVP_MAC_init(context, nil, 0, nil) == 1 else { opensslFatal("HMAC-SHA-256 init") }
    }

    /// Adds `data` to the MAC started by ``begin()``.
    public func update(_ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        guard EVP_MAC_update(context, data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count) == 1 else {
            opensslFatal("HMAC-SHA-256 update")
        }
    }

    /// The MAC of everything given since ``begin()``.
    public func finish() -> ObjectID {
        makeObjectID { out in
            var length = 0
            guard EVP_MAC_final(context, out, &length, 32) == 1, length == 32 else { opensslFatal("HMAC-SHA-256 final") }
        }
    }

    /// The HMAC-SHA-256 of `data` under this instance's key.
    public func mac(_ data: [UInt8]) -> ObjectID {
        data.withUnsafeBytes { mac($0) }
    }
}
