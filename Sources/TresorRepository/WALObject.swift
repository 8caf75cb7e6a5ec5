import Foundation
import TresorCore
import TresorCrypto

/// One archived WAL file (a 16 MiB segment, a `.partial` segment, a `.history` or `.backup`
/// file) as one sealed object at `tenants/<t>/wal/<timeline>/<name>`.
///
/// Layout: `"TRSW"` ‖ version (1 byte, 1) ‖ compression (1 byte) ‖ plaintext length (u64 LE) ‖
/// pushed at (u64 LE, Unix milliseconds) ‖ plaintext hash (32) ‖ nonce (12) ‖ ciphertext ‖
/// tag (16). The plaintext hash is HMAC-SHA-256 under the WAL hash key, so a second push of a
/// file can be compared with the stored one by reading 54 bytes, without the encryption key or
/// a download. The AES-256-GCM associated data is the 54-byte header followed by the file name
/// in UTF-8: a WAL object cannot be renamed into another segment or have its hash swapped.
public enum WALObject {
    static let magic: [UInt8] = Array("TRSW".utf8)
    /// Bytes before the nonce.
    public static let headerSize = 54

    /// The header of a stored WAL object.
    public struct Header: Sendable, Equatable {
        public var compression: BlobCompression
        public var length: UInt64
        public var pushedAt: Date
        public var hash: ObjectID
    }

    /// The keyed hash recorded for `plaintext`.
    public static func hash(_ plaintext: UnsafeRawBufferPointer, keys: WALKeys) -> ObjectID {
        HMACSHA256(key: keys.hash).mac(plaintext)
    }

    /// Compresses (zstd, when it helps) and seals one WAL file.
    public static func seal(_ plaintext: UnsafeRawBufferPointer, name: String, keys: WALKeys, level: Int, pushedAt: Date) throws -> [UInt8] {
        try withSealed(plaintext, name: name, keys: keys, level: level, pushedAt: pushedAt) { Array($0) }
    }

    /// Compresses (zstd on all cores, when it helps) and seals one WAL file into a 4096-aligned
    /// buffer that lives for the duration of `body`, so a local store can write it with direct
    /// I/O. Two buffers are allocated for a segment (compressed, sealed) and nothing is copied
    /// twice: `archive_command` latency is what PostgreSQL waits on.
    public static func withSealed<R>(_ plaintext: UnsafeRawBufferPointer, name: String, keys: WALKeys, level: Int, pushedAt: Date,
                                     _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let compressor = try ZstdCompressor(level: level, workers: plaintext.count >= 1 << 20 ? availableCores : 0)
        let compressed = UnsafeMutableRawBufferPointer.allocate(byteCount: ZstdCompressor.bound(plaintext.count), alignment: 64)
        defer { compressed.deallocate() }
        let n = try compressor.compress(plaintext, into: compressed)
        let useZstd = n < plaintext.count
        var w = ByteWriter(capacity: headerSize)
        w.raw(magic)
        w.u8(1)
        w.u8(useZstd ? BlobCompression.zstd.rawValue : BlobCompression.none.rawValue)
        w.u64(UInt64(plaintext.count))
        w.u64(UInt64(max(0, (pushedAt.timeIntervalSince1970 * 1000).rounded())))
        w.id(hash(plaintext, keys: keys))
        let header = w.bytes
        let gcm = try AESGCM(key: keys.encryption)
        let aad = header + Array(name.utf8)
        let payload = useZstd ? UnsafeRawBufferPointer(rebasing: compressed[0..<n]) : plaintext
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: header.count + payload.count + AESGCM.overhead, alignment: 4096)
        defer { out.deallocate() }
        header.withUnsafeBytes { out.copyMemory(from: $0) }
        let sealedLength = aad.withUnsafeBytes { a in
            gcm.seal(payload, aad: a, into: UnsafeMutableRawBufferPointer(rebasing: out[header.count...]))
        }
        return try body(UnsafeRawBufferPointer(rebasing: out[0..<(header.count + sealedLength)]))
    }

    /// Reads the header (the first ``headerSize`` bytes of the object).
    public static func header(_ bytes: [UInt8], name: String) throws -> Header {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic, bytes[4] == 1,
              let compression = BlobCompression(rawValue: bytes[5]) else {
            throw RepositoryError(.corrupt, "wal object \(name) is not a Tresor WAL object (bad header)")
        }
        var r = ByteReader(Array(bytes[6..<headerSize]), what: "wal header")
        let length = try r.u64()
        let millis = try r.u64()
        let hash = try r.id()
        return Header(compression: compression, length: length,
                      pushedAt: Date(timeIntervalSince1970: Double(millis) / 1000), hash: hash)
    }

    /// Verifies, decrypts and decompresses a WAL object; the result is checked against the
    /// header's length and keyed hash.
    public static func open(_ object: [UInt8], name: String, keys: WALKeys) throws -> [UInt8] {
        let h = try header(object, name: name)
        guard object.count >= headerSize + AESGCM.overhead else {
            throw RepositoryError(.corrupt, "wal object \(name) is truncated")
        }
        let gcm = try AESGCM(key: keys.encryption)
        let payload: [UInt8]
        do {
            payload = try gcm.open(Array(object[headerSize...]), aad: Array(object[0..<headerSize]) + Array(name.utf8))
        } catch {
            throw RepositoryError(.corrupt, "wal object \(name) fails authentication: damaged, renamed, or sealed with another key")
        }
        let plain: [UInt8]
        switch h.compression {
        case .none: plain = payload
        case .zstd: plain = try ZstdDecompressor().decompress(payload, rawSize: Int(h.length))
        }
        let ok = plain.count == Int(h.length) && plain.withUnsafeBytes { hash($0, keys: keys) } == h.hash
        guard ok else { throw RepositoryError(.corrupt, "wal object \(name) does not match the hash in its header") }
        return plain
    }
}
