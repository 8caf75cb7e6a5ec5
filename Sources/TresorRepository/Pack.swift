import TresorCore
import TresorCrypto

/// A pack object: many sealed blobs followed by their sealed header.
///
/// Layout: blob₁ ‖ … ‖ blobₙ ‖ sealed header ‖ header length (u32 LE) ‖ `"TPK1"`.
/// Each blob is nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16) of its payload (zstd frame or raw
/// bytes), with associated data id (32) ‖ type (1) ‖ compression (1). The header is
/// nonce ‖ ciphertext ‖ tag of `"TPH1"` ‖ count ‖ entries (as in an index object), with associated
/// data `"tresor pack header v1"`. A pack's name is the SHA-256 of all its bytes.
public enum PackFormat {
    static let trailerMagic = Array("TPK1".utf8)
    static let headerMagic = Array("TPH1".utf8)
    static let headerAAD = Array("tresor pack header v1".utf8)
    /// Bytes after the sealed header: its length and the magic.
    public static let trailerSize = 8

    /// The associated data that binds a blob's ciphertext to its id, type and compression.
    static func blobAAD(_ id: ObjectID, _ type: BlobType, _ compression: BlobCompression) -> [UInt8] {
        var a = id.bytes
        a.append(type.rawValue)
        a.append(compression.rawValue)
        return a
    }

    /// Reads the entries from a whole pack's bytes.
    public static func readHeader(_ pack: [UInt8], keys: TenantKeys, name: String) throws -> [PackEntry] {
        guard pack.count >= trailerSize + AESGCM.overhead,
              Array(pack[(pack.count - 4)...]) == trailerMagic else {
            throw RepositoryError(.corrupt, "pack \(name) has no valid trailer")
        }
        let headerLength = pack.withUnsafeBytes {
            Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: pack.count - 8, as: UInt32.self)))
        }
        guard headerLength <= pack.count - trailerSize else {
            throw RepositoryError(.corrupt, "pack \(name) has a header length beyond its size")
        }
        let start = pack.count - trailerSize - headerLength
        let gcm = try AESGCM(key: keys.encryption)
        let plain: [UInt8]
        do {
            plain = try gcm.open(Array(pack[start..<(pack.count - trailerSize)]), aad: headerAAD)
        } catch {
            throw RepositoryError(.corrupt, "pack \(name) header fails authentication")
        }
        var r = ByteReader(plain, what: "pack \(name) header")
        guard Array(try r.raw(4)) == headerMagic else { throw RepositoryError(.corrupt, "pack \(name) header has bad magic") }
        let n = try r.int()
        var entries: [PackEntry] = []
        for _ in 0..<n { entries.append(try PackEntry.decode(&r)) }
        return entries
    }
}

/// Builds one pack in a buffer that is reused from pack to pack: blobs are compressed and sealed
/// straight into it, so adding a blob allocates nothing. One per worker thread.
final class PackBuilder {
    private var buffer: [UInt8]
    private(set) var used = 0
    private(set) var entries: [PackEntry] = []
    private var scratch: [UInt8]
    private let gcm: AESGCM
    private let zstd: ZstdCompressor

    init(capacity: Int, maxBlob: Int, keys: TenantKeys, level: Int) throws {
        buffer = [UInt8](repeating: 0, count: capacity + maxBlob + AESGCM.overhead + 4096)
        scratch = [UInt8](repeating: 0, count: ZstdCompressor.bound(maxBlob))
        gcm = try AESGCM(key: keys.encryption)
        zstd = try ZstdCompressor(level: level)
    }

    var isEmpty: Bool { entries.isEmpty }

    /// Compresses (when it saves space) and seals one blob into the pack.
    func add(id: ObjectID, type: BlobType, data: UnsafeRawBufferPointer) throws {
        let need = used + data.count + AESGCM.overhead
        if need > buffer.count {
            // Only reachable when a caller passes a blob larger than the policy's maximum.
            buffer.append(contentsOf: repeatElement(0, count: need - buffer.count + 4096))
        }
        let compressedLength: Int = try scratch.withUnsafeMutableBytes { dst in
            try zstd.compress(data, into: dst)
        }
        let compression: BlobCompression = compressedLength < data.count ? .zstd : .none
        let aad = PackFormat.blobAAD(id, type, compression)
        let written: Int = buffer.withUnsafeMutableBytes { out in
            let region = UnsafeMutableRawBufferPointer(rebasing: out[used...])
            return aad.withUnsafeBytes { aadBuf in
                if compression == .zstd {
                    return scratch.withUnsafeBytes { s in
                        gcm.seal(UnsafeRawBufferPointer(rebasing: s[0..<compressedLength]), aad: aadBuf, into: region)
                    }
                }
                return gcm.seal(data, aad: aadBuf, into: region)
            }
        }
        entries.append(PackEntry(id: id, type: type, compression: compression, offset: UInt32(used),
                                 length: UInt32(written), rawLength: UInt32(data.count)))
        used += written
    }

    /// Appends the sealed header and trailer and returns the finished pack; the builder is then
    /// empty and ready for the next pack.
    func finish() -> (bytes: [UInt8], entries: [PackEntry]) {
        var w = ByteWriter(capacity: 16 + entries.count * 44)
        w.raw(PackFormat.headerMagic)
        w.varint(entries.count)
        for e in entries { e.encode(into: &w) }
        let sealedHeader = gcm.seal(w.bytes, aad: PackFormat.headerAAD)
        var pack = [UInt8]()
        pack.reserveCapacity(used + sealedHeader.count + PackFormat.trailerSize)
        pack.append(contentsOf: buffer[0..<used])
        pack.append(contentsOf: sealedHeader)
        withUnsafeBytes(of: UInt32(sealedHeader.count).littleEndian) { pack.append(contentsOf: $0) }
        pack.append(contentsOf: PackFormat.trailerMagic)
        let result = (pack, entries)
        used = 0
        entries.removeAll(keepingCapacity: true)
        return result
    }
}

/// Opens sealed blobs: authenticates, decrypts, decompresses. One per thread; reuses its buffers.
public final class BlobOpener {
    private let gcm: AESGCM
    private let zstd: ZstdDecompressor
    private var scratch: [UInt8] = []

    public init(keys: TenantKeys) throws {
        gcm = try AESGCM(key: keys.encryption)
        zstd = try ZstdDecompressor()
    }

    /// Opens the blob `id` from its sealed bytes into `out` (resized to the raw length).
    public func open(_ sealed: UnsafeRawBufferPointer, id: ObjectID, location: BlobLocation, into out: inout [UInt8]) throws {
        let aad = PackFormat.blobAAD(id, location.type, location.compression)
        let raw = Int(location.rawLength)
        guard sealed.count >= AESGCM.overhead else { throw RepositoryError(.corrupt, "blob \(id.short) is truncated") }
        let payloadLength = sealed.count - AESGCM.overhead
        if out.count != raw { out = [UInt8](repeating: 0, count: raw) }
        do {
            switch location.compression {
            case .none:
                guard payloadLength == raw else { throw RepositoryError(.corrupt, "blob \(id.short) has the wrong length") }
                _ = try aad.withUnsafeBytes { a in
                    try out.withUnsafeMutableBytes { o in try gcm.open(sealed, aad: a, into: o) }
                }
            case .zstd:
                if scratch.count < payloadLength { scratch = [UInt8](repeating: 0, count: payloadLength) }
                let n = try aad.withUnsafeBytes { a in
                    try scratch.withUnsafeMutableBytes { s in try gcm.open(sealed, aad: a, into: s) }
                }
                let got = try scratch.withUnsafeBytes { s in
                    try out.withUnsafeMutableBytes { o in try zstd.decompress(UnsafeRawBufferPointer(rebasing: s[0..<n]), into: o) }
                }
                guard got == raw else { throw RepositoryError(.corrupt, "blob \(id.short) decompresses to the wrong length") }
            }
        } catch let e as RepositoryError {
            throw e
        } catch {
            throw RepositoryError(.corrupt, "blob \(id.short) fails authentication or decoding: the pack is damaged")
        }
    }
}
