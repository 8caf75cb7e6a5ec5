internal import CCrypto

nonisolated(unsafe) let md5Digest: OpaquePointer = {
    guard let md = EVP_MD_fetch(nil, "MD5", nil) else { opensslFatal("loading MD5") }
    return md
}()

/// MD5 (RFC 1321), only because some protocols demand it as a transfer checksum (S3's
/// `Content-MD5` on DeleteObjects). Never used for identity or security.
public enum MD5 {
    /// The 16-byte MD5 digest of `data`.
    public static func digest(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        var length: UInt32 = 0
        let ok = data.withUnsafeBytes { d in
            out.withUnsafeMutableBufferPointer { EVP_Digest(d.baseAddress, d.count, $0.baseAddress, &length, md5Digest, nil) }
        }
        guard ok == 1, length == 16 else { opensslFatal("MD5") }
        return out
    }
}
