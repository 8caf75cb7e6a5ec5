import Foundation
import TresorCore
import TresorCrypto

/// One archived WAL file (a 16 MiB segment, a `.partial` segment, a `.history` or `.backup`
/// file) as one sealed object at `tenants/<t>/wal/<timeline>/<name>`.
///
/// Layout: `"TRSW"` ‖ version (1 byte, 2; 1 in objects of older versions) ‖ compression (1 byte)
/// ‖ plaintext length (u64 LE) ‖ pushed at (u64 LE, Unix milliseconds) ‖ plaintext hash (32) ‖
/// nonce (12) ‖ ciphertext ‖ tag (16). The plaintext hash is HMAC-SHA-256 under the WAL hash key,
/// so a second push of a file can be compared with the stored one by reading 54 bytes, without
/// the encryption key or a download. The AES-256-GCM associated data is the 54-byte header
/// followed by the file name in UTF-8: a WAL object cannot be renamed into another segment or have
/// its hash swapped. A compressed payload is one zstd frame per ``frameBytes`` of plaintext, back
/// to back (version 1: always one frame).
public enum WALObject {
    static let magic: [UInt8] = Array("TRSW".utf8)
    /// The version written; ``header(_:name:)`` reads 1 and 2.
    static let version: UInt8 = 2
    /// Bytes before the nonce.
    public static let headerSize = 54
    /// The longest WAL file: PostgreSQL's largest `wal_segment_size`.
    public static let maxFileBytes: UInt64 = 1 << 30
    /// Plaintext bytes per zstd frame: a 16 MiB segment is 4 frames, compressed in parallel with
    /// each other and with the keyed hash. Independent frames cost under 1% of compression on
    /// pgbench WAL against one frame (zstd -3 keeps a 2 MiB window anyway).
    public static let frameBytes = 4 << 20

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
        try withSealed(plaintext, name: name, keys: keys, level: level, pushedAt: pushedAt) { sealed, _ in Array(sealed) }
    }

    /// Compresses (zstd, when it helps) and seals one WAL file into a 4096-aligned buffer that
    /// lives for the duration of `body`, which also gets the keyed hash recorded in the header,
    /// so a local store can write it with direct I/O. `archive_command` latency is what
    /// PostgreSQL waits on, so the hash and the ``frameBytes`` frames are computed in parallel on
    /// up to ``availableCores`` threads (the calling one included), straight from `plaintext`
    /// into one scratch buffer, and sealed from there: two buffers of about the compressed size
    /// are touched, and the plaintext is never copied.
    public static func withSealed<R>(
        _ plaintext: UnsafeRawBufferPointer, name: String, keys: WALKeys, level: Int, pushedAt: Date,
        _ body: (UnsafeRawBufferPointer, ObjectID) throws -> R
    ) throws -> R {
        let frames = (plaintext.count + frameBytes - 1) / frameBytes
        let slot = ZstdCompressor.bound(min(plaintext.count, frameBytes))
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, frames * slot), alignment: 64)
        defer { scratch.deallocate() }
        let work = FrameWork(plaintext: plaintext, scratch: scratch, slot: slot, frames: frames, level: level, hashKey: keys.hash)
        try work.run(threads: min(availableCores, 1 + frames))
        let hash = work.hash!
        let compressedCount = work.sizes.reduce(0, +)
        let useZstd = compressedCount < plaintext.count
        var w = ByteWriter(capacity: headerSize)
        w.raw(magic)
        w.u8(version)
        w.u8(useZstd ? BlobCompression.zstd.rawValue : BlobCompression.none.rawValue)
        w.u64(UInt64(plaintext.count))
        w.u64(UInt64(max(0, (pushedAt.timeIntervalSince1970 * 1000).rounded())))
        w.id(hash)
        let header = w.bytes
        let gcm = try AESGCM(key: keys.encryption)
        let aad = header + Array(name.utf8)
        let payloadCount = useZstd ? compressedCount : plaintext.count
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: header.count + payloadCount + AESGCM.overhead, alignment: 4096)
        defer { out.deallocate() }
        header.withUnsafeBytes { out.copyMemory(from: $0) }
        let sealed = UnsafeMutableRawBufferPointer(rebasing: out[header.count...])
        let sealedLength = aad.withUnsafeBytes { a in
            useZstd ? gcm.seal(pieces: work.compressedFrames, aad: a, into: sealed) : gcm.seal(plaintext, aad: a, into: sealed)
        }
        return try body(UnsafeRawBufferPointer(rebasing: out[0..<(header.count + sealedLength)]), hash)
    }

    /// Reads the header (the first ``headerSize`` bytes of the object).
    public static func header(_ bytes: [UInt8], name: String) throws -> Header {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic, bytes[4] == 1 || bytes[4] == version,
            let compression = BlobCompression(rawValue: bytes[5])
        else {
            throw RepositoryError(.corrupt, "wal object \(name) is not a Tresor WAL object (bad header)")
        }
        var r = ByteReader(Array(bytes[6..<headerSize]), what: "wal header")
        let length = try r.u64()
        let millis = try r.u64()
        let hash = try r.id()
        // No WAL file is longer than PostgreSQL's largest segment size (1 GiB); a longer length
        // is damage, and would trap or exhaust memory where open() sizes its output by it.
        guard length <= maxFileBytes else {
            throw RepositoryError(.corrupt, "wal object \(name) has a length (\(length) bytes) beyond any WAL file (bad header)")
        }
        return Header(
            compression: compression, length: length,
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
        case .zstd:
            plain = try [UInt8](unsafeUninitializedCapacity: Int(h.length)) { dst, initialized in
                initialized = try payload.withUnsafeBytes { try ZstdDecompressor().decompressFrames($0, into: UnsafeMutableRawBufferPointer(dst)) }
            }
        }
        let ok = plain.count == Int(h.length) && plain.withUnsafeBytes { hash($0, keys: keys) } == h.hash
        guard ok else { throw RepositoryError(.corrupt, "wal object \(name) does not match the hash in its header") }
        return plain
    }
}

/// The parallel part of ``WALObject/withSealed(_:name:keys:level:pushedAt:_:)``: item 0 is the
/// keyed hash of the whole plaintext (the longest single item, so it is taken first), item `i > 0`
/// compresses frame `i - 1` into slot `i - 1` of the scratch buffer. Threads take items in order
/// until none are left; each compressing thread owns one zstd context.
private final class FrameWork: @unchecked Sendable {
    let plaintext: UnsafeRawBufferPointer
    let scratch: UnsafeMutableRawBufferPointer
    let slot: Int
    let frames: Int
    let level: Int
    let hashKey: [UInt8]
    /// Guarded by `lock` while threads run; read after they joined.
    private(set) var sizes: [Int]
    private(set) var hash: ObjectID?
    private var next = 0
    private var failure: (any Error)?
    private let lock = NSLock()

    init(plaintext: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer, slot: Int, frames: Int, level: Int, hashKey: [UInt8]) {
        self.plaintext = plaintext
        self.scratch = scratch
        self.slot = slot
        self.frames = frames
        self.level = level
        self.hashKey = hashKey
        self.sizes = [Int](repeating: 0, count: frames)
    }

    /// Runs every item on `threads` threads (this one and `threads - 1` new ones) and rethrows
    /// the first failure.
    func run(threads: Int) throws {
        if threads > 1 {
            let group = ThreadGroup()
            group.start(threads - 1, name: "wal-seal") { [self] _ in work() }
            work()
            group.wait()
        } else {
            work()
        }
        if let failure { throw failure }
    }

    /// The compressed frames in order, each a view into the scratch buffer.
    var compressedFrames: [UnsafeRawBufferPointer] {
        (0..<frames).map { UnsafeRawBufferPointer(rebasing: scratch[($0 * slot)..<($0 * slot + sizes[$0])]) }
    }

    private func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard failure == nil, next <= frames else { return nil }
        next += 1
        return next - 1
    }

    private func work() {
        var compressor: ZstdCompressor?
        while let item = take() {
            if item == 0 {
                let h = HMACSHA256(key: hashKey).mac(plaintext)
                lock.lock(); hash = h; lock.unlock()
                continue
            }
            let i = item - 1
            let start = i * WALObject.frameBytes
            let input = UnsafeRawBufferPointer(rebasing: plaintext[start..<min(plaintext.count, start + WALObject.frameBytes)])
            do {
                if compressor == nil { compressor = try ZstdCompressor(level: level) }
                let n = try compressor!.compress(input, into: UnsafeMutableRawBufferPointer(rebasing: scratch[(i * slot)..<((i + 1) * slot)]))
                lock.lock(); sizes[i] = n; lock.unlock()
            } catch {
                lock.lock(); if failure == nil { failure = error }; lock.unlock()
            }
        }
    }
}
