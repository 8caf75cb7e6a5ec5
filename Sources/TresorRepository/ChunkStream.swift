import TresorCore
import TresorCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The producer side of the pipeline: cuts one stream at a time (a document, a file inside a
/// base backup's tar) into chunks, identifies each with the tenant's keyed hash and hands it to
/// the ``BlobWriter``. Bytes arrive either pushed (``append(_:)``) or pulled from a file
/// descriptor (``appendFile(_:progress:)``, which reads straight into the window so a file is
/// copied once).
///
/// One window of twice the maximum chunk is allocated for the life of the stream and reused for
/// every file: at least one maximum chunk is always in view before a content-defined cut, so
/// boundaries depend only on the bytes, never on how they arrived. Not thread-safe; one per
/// producer thread.
public final class ChunkStream {
    private let chunker: FastCDC
    private let writer: BlobWriter
    private let hmac: HMACSHA256
    private let maxChunk: Int
    private let window: UnsafeMutableRawBufferPointer
    private var start = 0, end = 0
    private var fixed: Int?
    private var compressionOf: ((UnsafeRawBufferPointer) -> ZstdSetting?)?
    private var chunks: [ObjectID] = []
    private var bytes: UInt64 = 0
    private var blobType = BlobType.data

    /// `maxChunk` bounds fixed-size chunks; it defaults to the repository's chunker maximum.
    public init(repository: TenantRepository, writer: BlobWriter, maxChunk: Int? = nil) {
        chunker = repository.chunker
        self.writer = writer
        self.maxChunk = min(maxChunk ?? repository.config.chunker.maxSize, repository.config.chunker.maxSize)
        hmac = HMACSHA256(key: repository.keys.chunkID)
        window = .allocate(byteCount: max(2 * repository.config.chunker.maxSize, 1 << 20), alignment: 64)
    }

    deinit { window.deallocate() }

    /// Starts a new stream: content-defined chunks, or fixed-size ones of `fixed` bytes (for
    /// page-structured files, where fixed boundaries dedup better). `compression`, when given, is
    /// asked for each chunk's zstd setting (nil: the policy's level), once per chunk.
    public func begin(fixed: Int? = nil, compression: ((UnsafeRawBufferPointer) -> ZstdSetting?)? = nil, type: BlobType = .data) {
        self.fixed = fixed.map { min($0, maxChunk) }
        blobType = type
        compressionOf = compression
        start = 0
        end = 0
        bytes = 0
        chunks = []
    }

    /// Bytes that must be in view before a cut: a whole fixed chunk, or the chunker's maximum.
    private var threshold: Int { fixed ?? chunker.maxSize }

    /// Moves what is left to the front of the window when the window is full.
    private func compactIfFull() {
        guard end == window.count else { return }
        if end > start { memmove(window.baseAddress!, window.baseAddress! + start, end - start) }
        end -= start
        start = 0
    }

    /// Adds bytes of the current stream, cutting every chunk that is decided.
    public func append(_ data: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < data.count {
            compactIfFull()
            let n = min(window.count - end, data.count - off)
            (window.baseAddress! + end).copyMemory(from: data.baseAddress! + off, byteCount: n)
            end += n
            off += n
            while end - start >= threshold { try emit() }
        }
    }

    /// Reads `fd` to its end (or `limit` bytes) as the current stream's bytes; `progress` gets the
    /// byte count of each chunk cut. ``finish()`` then cuts the rest; calling ``finish()`` and then
    /// appending again continues the same stream with a cut at that point (one per sparse extent).
    /// Returns the bytes read. A read error is thrown as ``Errno``.
    @discardableResult
    public func appendFile(_ fd: Int32, limit: UInt64 = .max, progress: (Int) -> Void = { _ in }) throws -> UInt64 {
        var left = limit
        while left > 0 {
            compactIfFull()
            let n = read(fd, window.baseAddress! + end, Int(min(UInt64(window.count - end), left)))
            if n < 0 {
                if errno == EINTR { continue }
                throw Errno(errno)  // the file's failure, not the repository's: the caller reports it
            }
            if n == 0 { break }
            end += n
            left -= UInt64(n)
            while end - start >= threshold { progress(try emit()) }
        }
        return limit - left
    }

    /// Cuts what is left and returns the stream's chunk ids, in order.
    public func finish() throws -> [ObjectID] {
        while start < end { try emit() }
        return chunks
    }

    /// Bytes of the current stream cut so far (all of it after ``finish()``).
    public var byteCount: UInt64 { bytes }

    @discardableResult
    private func emit() throws -> Int {
        let view = UnsafeRawBufferPointer(rebasing: window[start..<end])
        let n = fixed.map { Swift.min($0, view.count) } ?? chunker.cut(view)
        let chunk = UnsafeRawBufferPointer(rebasing: view[0..<n])
        let id = hmac.mac(chunk)
        try writer.add(id: id, type: blobType, data: chunk, compression: compressionOf?(chunk))
        chunks.append(id)
        start += n
        bytes += UInt64(n)
        return n
    }

    /// Chunks a serialised file tree into tree blobs (content-defined, so unchanged stretches of
    /// a tree dedup across snapshots) and returns their ids, as a manifest lists them.
    public func storeTree(_ tree: [UInt8]) throws -> [String] {
        var ids: [String] = []
        try tree.withUnsafeBytes { buf in
            var offset = 0
            while offset < buf.count {
                let rest = UnsafeRawBufferPointer(rebasing: buf[offset...])
                let n = chunker.cut(rest)
                let chunk = UnsafeRawBufferPointer(rebasing: rest[0..<n])
                let id = hmac.mac(chunk)
                try writer.add(id: id, type: .tree, data: chunk)
                ids.append(id.hex)
                offset += n
            }
        }
        return ids
    }
}
