import Foundation
import TresorCore
import TresorCrypto
import TresorStore

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
        let headerLength = try headerLength(trailer: Array(pack.suffix(trailerSize)), packSize: pack.count, name: name)
        let start = pack.count - trailerSize - headerLength
        return try openHeader(Array(pack[start..<(pack.count - trailerSize)]), keys: keys, name: name)
    }

    /// The sealed header's length, from the pack's last 8 bytes.
    public static func headerLength(trailer: [UInt8], packSize: Int, name: String) throws -> Int {
        guard trailer.count == trailerSize, packSize >= trailerSize + AESGCM.overhead,
            Array(trailer[4...]) == trailerMagic
        else {
            throw RepositoryError(.corrupt, "pack \(name) has no valid trailer")
        }
        let length = trailer.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
        guard length >= AESGCM.overhead, length <= packSize - trailerSize else {
            throw RepositoryError(.corrupt, "pack \(name) has a header length beyond its size")
        }
        return length
    }

    /// Authenticates and parses a pack's sealed header.
    public static func openHeader(_ sealed: [UInt8], keys: TenantKeys, name: String) throws -> [PackEntry] {
        let gcm = try AESGCM(key: keys.encryption)
        let plain: [UInt8]
        do {
            plain = try gcm.open(sealed, aad: headerAAD)
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

extension PackFormat {
    /// A pack's header as read from the store: its entries sorted by offset, and the raw trailer
    /// and sealed header (so a caller hashing the whole pack need not fetch them again).
    public struct StoredHeader {
        public var entries: [PackEntry]
        public var trailer: [UInt8]
        public var sealedHeader: [UInt8]
        /// Where the sealed header starts: the blobs end here.
        public var headerStart: Int
    }

    /// Reads a pack's header from the store with two ranged reads (trailer, then header),
    /// authenticates it, and checks that its blobs tile the pack from byte 0 to the header, so
    /// the header alone describes every byte (packs are self-describing: `repair index` builds
    /// index objects from this). Damage throws a ``RepositoryError/Code/corrupt`` error; store
    /// failures are thrown as they are.
    public static func readHeader(store: any Store, key: String, size: Int, keys: TenantKeys, name: String) throws -> StoredHeader {
        guard size >= trailerSize + AESGCM.overhead else {
            throw RepositoryError(.corrupt, "pack \(name) is too short (\(size) bytes) to be a pack")
        }
        let trailer = try store.get(key, range: (size - trailerSize)..<size)
        let headerLength = try headerLength(trailer: trailer, packSize: size, name: name)
        let headerStart = size - trailerSize - headerLength
        let sealedHeader = try store.get(key, range: headerStart..<(size - trailerSize))
        let entries = try openHeader(sealedHeader, keys: keys, name: name).sorted { $0.offset < $1.offset }
        var expected = 0
        for e in entries {
            guard Int(e.offset) == expected, e.length >= UInt32(AESGCM.overhead) else {
                throw RepositoryError(.corrupt, "pack \(name) header: blobs do not tile the pack (gap or overlap at \(expected))")
            }
            expected += Int(e.length)
        }
        guard expected == headerStart else {
            throw RepositoryError(.corrupt, "pack \(name) header: blobs end at \(expected), the header starts at \(headerStart)")
        }
        return StoredHeader(entries: entries, trailer: trailer, sealedHeader: sealedHeader, headerStart: headerStart)
    }
}

/// A 4096-byte aligned buffer that holds one pack while it is built and uploaded; recycled
/// through a ``PackBufferPool`` so no pack costs an allocation or fresh page faults.
final class PackBuffer: @unchecked Sendable {
    let memory: UnsafeMutableRawBufferPointer

    init(size: Int) { memory = .allocate(byteCount: size, alignment: 4096) }

    deinit { memory.deallocate() }
}

/// At most `limit` pack buffers exist at once; `take` waits for one to come back when all are
/// in use. This is the bound on pipeline memory for packs in flight.
final class PackBufferPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var free: [PackBuffer] = []
    private var allocated = 0
    let bufferSize: Int
    let limit: Int

    init(bufferSize: Int, limit: Int) {
        self.bufferSize = bufferSize
        self.limit = limit
    }

    func take() -> PackBuffer {
        condition.lock()
        defer { condition.unlock() }
        while free.isEmpty && allocated >= limit { condition.wait() }
        if let b = free.popLast() { return b }
        allocated += 1
        return PackBuffer(size: bufferSize)
    }

    func give(_ buffer: PackBuffer) {
        condition.lock()
        free.append(buffer)
        condition.signal()
        condition.unlock()
    }
}

/// A finished pack: its bytes are `buffer.memory[0..<length]`; hand the buffer back to the pool
/// once stored.
struct FinishedPack: @unchecked Sendable {
    let buffer: PackBuffer
    let length: Int
    let entries: [PackEntry]

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer.memory[0..<length]) }
}

/// Builds packs: blobs are compressed and sealed straight into a pooled buffer, so adding a blob
/// allocates nothing. One per worker thread.
final class PackBuilder {
    /// Entries per pack are capped so a pack of tiny files keeps its header within the reserve.
    static let maxEntries = 16384
    static let headerReserve = maxEntries * 56 + 4096

    /// The buffer size a pool needs for packs of `target` bytes and blobs of up to `maxBlob`.
    static func bufferSize(target: Int, maxBlob: Int) -> Int {
        max(target, maxBlob + AESGCM.overhead) + headerReserve
    }

    private let pool: PackBufferPool
    private var buffer: PackBuffer?
    private(set) var used = 0
    private(set) var entries: [PackEntry] = []
    private let scratch: UnsafeMutableRawBufferPointer
    private var aad = [UInt8](repeating: 0, count: 34)
    private let gcm: AESGCM
    private let zstd: ZstdCompressor
    private let target: Int

    init(pool: PackBufferPool, target: Int, maxBlob: Int, keys: TenantKeys, level: Int) throws {
        gcm = try AESGCM(key: keys.encryption)
        zstd = try ZstdCompressor(level: level)
        self.pool = pool
        self.target = target
        scratch = .allocate(byteCount: ZstdCompressor.bound(maxBlob), alignment: 64)
    }

    deinit {
        scratch.deallocate()
        if let buffer { pool.give(buffer) }
    }

    var isEmpty: Bool { entries.isEmpty }

    /// Whether the pack has reached its target size or entry cap and should be finished.
    var isFull: Bool { used >= target || entries.count >= Self.maxEntries }

    /// Whether a blob of `length` plaintext bytes fits without passing the target size, so
    /// packs stay at most the target (a blob larger than the target gets a pack of its own).
    func hasRoom(for length: Int) -> Bool { used + length + AESGCM.overhead <= target }

    /// Compresses (when it saves space, and unless ``CompressibilityProbe`` finds the blob random; with `compression`, else at the builder's level) and
    /// seals one blob into the pack.
    func add(id: ObjectID, type: BlobType, data: UnsafeRawBufferPointer, compression setting: ZstdSetting? = nil) throws {
        if buffer == nil { buffer = pool.take() }
        let memory = buffer!.memory
        precondition(
            used + data.count + AESGCM.overhead + Self.headerReserve <= memory.count,
            "blob larger than the policy's maximum chunk size")
        // Random-looking chunks skip zstd: it would fail to shrink them at the cost of compressing.
        let compressedLength =
            CompressibilityProbe.isIncompressible(data)
            ? data.count
            : try zstd.compress(data, into: scratch, setting: setting ?? ZstdSetting(level: zstd.level))
        let compression: BlobCompression = compressedLength < data.count ? .zstd : .none
        // The associated data, written in place: id ‖ type ‖ compression.
        aad.withUnsafeMutableBytes { a in
            withUnsafeBytes(of: id) { a.copyMemory(from: $0) }
            a[32] = type.rawValue
            a[33] = compression.rawValue
        }
        let region = UnsafeMutableRawBufferPointer(rebasing: memory[used...])
        let payload = compression == .zstd ? UnsafeRawBufferPointer(rebasing: scratch[0..<compressedLength]) : data
        let written = aad.withUnsafeBytes { gcm.seal(payload, aad: $0, into: region) }
        entries.append(
            PackEntry(
                id: id, type: type, compression: compression, offset: UInt32(used),
                length: UInt32(written), rawLength: UInt32(data.count)))
        used += written
    }

    /// Appends the sealed header and trailer in place and hands over the finished pack; the
    /// builder starts its next pack in another pooled buffer.
    func finish() -> FinishedPack {
        if buffer == nil { buffer = pool.take() }
        let memory = buffer!.memory
        var w = ByteWriter(capacity: 16 + entries.count * 44)
        w.raw(PackFormat.headerMagic)
        w.varint(entries.count)
        for e in entries { e.encode(into: &w) }
        let headerLength = w.bytes.withUnsafeBytes { plain in
            PackFormat.headerAAD.withUnsafeBytes { aad in
                gcm.seal(plain, aad: aad, into: UnsafeMutableRawBufferPointer(rebasing: memory[used...]))
            }
        }
        var end = used + headerLength
        memory.storeBytes(of: UInt32(headerLength).littleEndian, toByteOffset: end, as: UInt32.self)
        end += 4
        for (i, b) in PackFormat.trailerMagic.enumerated() { memory[end + i] = b }
        end += 4
        let pack = FinishedPack(buffer: buffer!, length: end, entries: entries)
        buffer = nil
        used = 0
        entries.removeAll(keepingCapacity: true)
        return pack
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
        let raw = Int(location.rawLength)
        if out.count != raw { out = [UInt8](repeating: 0, count: raw) }
        try out.withUnsafeMutableBytes { try open(sealed, id: id, location: location, to: $0) }
    }

    /// Opens the blob `id` into the first bytes of `buffer`, which grows only when it is too
    /// small (never shrinks): blobs of every size reuse one buffer, with no allocation or
    /// zero-filling per blob. Returns the raw length; the bytes after it are left over.
    public func open(_ sealed: UnsafeRawBufferPointer, id: ObjectID, location: BlobLocation, reusing buffer: inout [UInt8]) throws -> Int {
        let raw = Int(location.rawLength)
        if buffer.count < raw { buffer = [UInt8](repeating: 0, count: raw) }
        try buffer.withUnsafeMutableBytes { try open(sealed, id: id, location: location, to: UnsafeMutableRawBufferPointer(rebasing: $0[0..<raw])) }
        return raw
    }

    /// Opens into `out`, exactly the blob's raw length.
    private func open(_ sealed: UnsafeRawBufferPointer, id: ObjectID, location: BlobLocation, to out: UnsafeMutableRawBufferPointer) throws {
        let aad = PackFormat.blobAAD(id, location.type, location.compression)
        let raw = out.count
        guard sealed.count >= AESGCM.overhead else { throw RepositoryError(.corrupt, "blob \(id.short) is truncated") }
        let payloadLength = sealed.count - AESGCM.overhead
        do {
            switch location.compression {
            case .none:
                guard payloadLength == raw else { throw RepositoryError(.corrupt, "blob \(id.short) has the wrong length") }
                _ = try aad.withUnsafeBytes { a in try gcm.open(sealed, aad: a, into: out) }
            case .zstd:
                if scratch.count < payloadLength { scratch = [UInt8](repeating: 0, count: payloadLength) }
                let n = try aad.withUnsafeBytes { a in
                    try scratch.withUnsafeMutableBytes { s in try gcm.open(sealed, aad: a, into: s) }
                }
                let got = try scratch.withUnsafeBytes { s in
                    try zstd.decompress(UnsafeRawBufferPointer(rebasing: s[0..<n]), into: out)
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

extension PackFormat {
    /// Groups blobs (sorted by offset) into read windows of at most `maxBytes` each (a single
    /// larger blob gets a window of its own), so readers fetch a pack in a few requests while
    /// holding a bounded amount of it in memory. Returns, per window, its byte range and the
    /// indices of the blobs inside it.
    public static func readWindows(_ ranges: [Range<Int>], maxBytes: Int) -> [(range: Range<Int>, members: Range<Int>)] {
        var out: [(Range<Int>, Range<Int>)] = []
        var i = 0
        while i < ranges.count {
            let start = ranges[i].lowerBound
            var end = ranges[i].upperBound
            var j = i + 1
            while j < ranges.count, ranges[j].upperBound - start <= maxBytes {
                end = max(end, ranges[j].upperBound)
                j += 1
            }
            out.append((start..<end, i..<j))
            i = j
        }
        return out
    }

    /// The largest read a reader makes of a pack at once.
    public static let readWindowBytes = 4 << 20
}
