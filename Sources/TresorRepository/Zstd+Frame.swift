internal import CZstd
import TresorCore

extension ZstdDecompressor {
    /// Decompresses a frame that records its own content size (every frame Tresor writes does),
    /// refusing sizes over `limit` so a damaged header cannot ask for unbounded memory.
    public func decompressFrame(_ frame: [UInt8], name: String, limit: Int = 1 << 30) throws -> [UInt8] {
        let size = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        guard size != ZSTD_CONTENTSIZE_UNKNOWN, size != ZSTD_CONTENTSIZE_ERROR, size <= UInt64(limit) else {
            throw RepositoryError(.corrupt, "\(name) has a damaged compression frame")
        }
        return try decompress(frame, rawSize: Int(size))
    }
}

extension ZstdDecompressor {
    /// Decompresses `src`, one or more complete zstd frames back to back (a WAL object's
    /// independently compressed pieces), into `dst`, which must be exactly the sum of their
    /// contents. Every frame must record its content size (every frame Tresor writes does).
    ///
    /// Throws on a frame without a content size, on frames holding more or fewer bytes than
    /// `dst.count`, and on anything ``decompress(_:into:)`` refuses for one frame. Allocates
    /// nothing after the first call.
    public func decompressFrames(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws -> Int {
        if src.isEmpty && dst.isEmpty { return 0 }
        var read = 0
        var written = 0
        repeat {
            let rest = UnsafeRawBufferPointer(rebasing: src[read...])
            let frameLength = ZSTD_findFrameCompressedSize(rest.baseAddress, rest.count)
            let size = ZSTD_getFrameContentSize(rest.baseAddress, rest.count)
            guard ZSTD_isError(frameLength) == 0, size != ZSTD_CONTENTSIZE_UNKNOWN, size != ZSTD_CONTENTSIZE_ERROR,
                size <= UInt64(dst.count - written)
            else {
                throw RepositoryError(.corrupt, "zstd frame at byte \(read) is damaged or holds more than the \(dst.count) bytes expected")
            }
            written += try decompress(
                UnsafeRawBufferPointer(rebasing: rest[..<frameLength]),
                into: UnsafeMutableRawBufferPointer(rebasing: dst[written..<(written + Int(size))]))
            read += frameLength
        } while read < src.count
        guard written == dst.count else {
            throw RepositoryError(.corrupt, "zstd frames hold \(written) bytes, expected \(dst.count)")
        }
        return written
    }
}
