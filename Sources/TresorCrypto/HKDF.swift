internal import CCrypto

nonisolated(unsafe) let hkdfAlgorithm: OpaquePointer = {
    guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else { opensslFatal("loading HKDF") }
    return kdf
}()

/// HKDF (RFC 5869): derives keys from input keying material.
///
/// Safe from any thread. Each call creates and frees one OpenSSL KDF context and costs
/// 2 + ceil(count / 32) HMAC-SHA-256 computations over short inputs (microseconds); call it when
/// opening a repository, not per chunk.
public enum HKDF {
    /// HKDF-SHA-256 (extract then expand) of `ikm` with `salt` and the UTF-8 bytes of `info`
    /// (a label naming what the key is for, so keys for different purposes are independent).
    ///
    /// `count` must be in `0...8160` (255 × 32, RFC 5869's limit). An empty `salt` means
    /// 32 zero bytes, as the RFC specifies. Returns exactly `count` bytes.
    public static func sha256(ikm: [UInt8], salt: [UInt8], info: String, count: Int) -> [UInt8] {
        sha256(ikm: ikm, salt: salt, info: Array(info.utf8), count: count)
    }

    /// HKDF-SHA-256 with binary `info`; otherwise identical to
    /// ``sha256(ikm:salt:info:count:)-(_,_,String,_)``.
    public static func sha256(ikm: [UInt8], salt: [UInt8], info: [UInt8], count: Int) -> [UInt8] {
        precondition((0...255 * 32).contains(count), "HKDF-SHA-256 output must be 0...8160 bytes")
        guard count > 0 else { return [] }
        guard let context = EVP_KDF_CTX_new(hkdfAlgorithm) else { opensslFatal("creating an HKDF context") }
        defer { EVP_KDF_CTX_free(context) }

        // OSSL_PARAM wants mutable pointers; OpenSSL only copies from them, so the casts are sound.
        func octets(_ name: StaticString, _ base: UnsafePointer<UInt8>, _ count: Int) -> OSSL_PARAM {
            OSSL_PARAM_construct_octet_string(cString(name), UnsafeMutableRawPointer(mutating: base), count)
        }
        return withNonNullBytes(ikm) { ikmBytes, ikmCount in
            withNonNullBytes(salt) { saltBytes, saltCount in
                withNonNullBytes(info) { infoBytes, infoCount in
                    var params = [
                        OSSL_PARAM_construct_utf8_string(cString("digest"), cString("SHA256"), 0),
                        octets("key", ikmBytes, ikmCount),
                    ]
                    // Leaving the salt out makes OpenSSL use HashLen zero bytes, which is what the
                    // RFC prescribes for an absent salt; an empty info is simply omitted.
                    if saltCount > 0 { params.append(octets("salt", saltBytes, saltCount)) }
                    if infoCount > 0 { params.append(octets("info", infoBytes, infoCount)) }
                    params.append(OSSL_PARAM_construct_end())
                    return [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
                        guard EVP_KDF_derive(context, out.baseAddress, count, &params) == 1 else {
                            opensslFatal("HKDF-SHA-256")
                        }
                        initialized = count
                    }
                }
            }
        }
    }
}
