import CZstd
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
