internal import CCrypto

/// Cryptographically secure random bytes from OpenSSL's default DRBG (`RAND_bytes`), seeded
/// from the operating system.
///
/// Safe to call from any thread. A failure of the generator stops the process: continuing
/// with predictable keys or nonces would be worse than not running.
public enum SecureRandom {
    /// Returns `count` fresh random bytes. Costs one array allocation plus the DRBG work
    /// (roughly AES-CTR speed).
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "count must not be negative")
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// Overwrites every byte of `buffer` with fresh random bytes. Allocates nothing.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard var base = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 {
            let n = min(remaining, Int(Int32.max))
            guard RAND_bytes(base.assumingMemoryBound(to: UInt8.self), Int32(n)) == 1 else {
                opensslFatal("random generator")
            }
            base += n
            remaining -= n
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths, never on their
/// contents (OpenSSL's `CRYPTO_memcmp`). Use it for MACs, tags and key checks.
///
/// Returns `false` at once when the lengths differ: lengths are not treated as secret.
/// Allocates nothing; costs one pass over the bytes.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in
            CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, pa.count) == 0
        }
    }
}
