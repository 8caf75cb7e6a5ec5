import TresorCore
import TresorCrypto

/// The envelope of every repository object that is not a pack: index objects and snapshot
/// manifests.
///
/// Layout: `"TRSO"` ‖ version (1 byte, 1) ‖ kind (1 byte) ‖ compression (1 byte) ‖
/// nonce (12) ‖ ciphertext ‖ tag (16). The first 7 bytes are the AES-256-GCM associated data, so
/// an index cannot be passed off as a snapshot or its compression flag changed.
public enum SealedObject {
    public enum Kind: UInt8, Sendable {
        case index = 2
        case snapshot = 3
    }

    static let magic: [UInt8] = Array("TRSO".utf8)

    /// Compresses (zstd, when it helps) and seals `plaintext`.
    public static func seal(_ plaintext: [UInt8], kind: Kind, keys: TenantKeys, level: Int) throws -> [UInt8] {
        let compressed = try ZstdCompressor(level: level).compress(plaintext)
        let useZstd = compressed.count < plaintext.count
        var header = magic
        header += [1, kind.rawValue, useZstd ? BlobCompression.zstd.rawValue : BlobCompression.none.rawValue]
        let gcm = try AESGCM(key: keys.encryption)
        return header + gcm.seal(useZstd ? compressed : plaintext, aad: header)
    }

    /// Verifies, decrypts and decompresses an object sealed by ``seal(_:kind:keys:level:)``.
    public static func open(_ object: [UInt8], kind: Kind, keys: TenantKeys, name: String) throws -> [UInt8] {
        guard object.count >= 7 + AESGCM.overhead, Array(object[0..<4]) == magic, object[4] == 1 else {
            throw RepositoryError(.corrupt, "\(name) is not a Tresor object (bad header)")
        }
        guard object[5] == kind.rawValue else {
            throw RepositoryError(.corrupt, "\(name) holds a different kind of object")
        }
        let header = Array(object[0..<7])
        let gcm = try AESGCM(key: keys.encryption)
        let payload: [UInt8]
        do {
            payload = try gcm.open(Array(object[7...]), aad: header)
        } catch {
            throw RepositoryError(.corrupt, "\(name) fails authentication: damaged, or sealed with another key")
        }
        switch BlobCompression(rawValue: object[6]) {
        case .none?: return payload
        case .zstd?: return try ZstdDecompressor().decompressFrame(payload, name: name)
        case nil: throw RepositoryError(.corrupt, "\(name) has an unknown compression")
        }
    }
}
