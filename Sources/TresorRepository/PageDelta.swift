internal import CZstd

/// The two encodings of a page delta (``TreeNode/PageDelta``): how a changed page is written as
/// its difference from its base page, and how a reader turns the base page back into it.
///
/// A delta opens with one byte that says its kind:
/// - `1`, **runs**: then runs, each a little-endian UInt16 offset in the page, a UInt16 length and
///   that many bytes, which replace the base page's bytes there. What an update that stays in
///   place leaves: a new `xmax`, hint bits, the page header's LSN and checksum.
/// - `2`, **zstd against the base**: then one zstd frame of the whole new page, compressed with
///   the base page as its prefix (`ZSTD_CCtx_refPrefix`), so stretches that moved inside the page
///   are references to where they were. What pruning leaves: PostgreSQL compacts a page's
///   tuples when it removes dead ones, which shifts most of its bytes by the size of what went.
///
/// Runs are tried first (a few word compares per page); zstd only when they do not fit.
/// Each instance holds one zstd context of each kind and one page of scratch, allocated once.
/// Not thread-safe: one per thread.
public final class PageDeltaCodec {
    static let runsKind: UInt8 = 1
    static let zstdKind: UInt8 = 2
    /// Equal bytes between two differences that end a run (fewer are carried in the run: a run
    /// header costs 4 bytes).
    static let runGap = 8
    /// The zstd level of kind-2 deltas: the fastest positive level, since every changed page that
    /// moved its tuples pays it on the backup's own thread.
    static let zstdLevel: Int32 = 1

    private let cctx: OpaquePointer
    private let dctx: OpaquePointer
    private let scratch: UnsafeMutableRawBufferPointer

    public init() throws {
        guard let c = ZSTD_createCCtx() else { throw RepositoryError(.failed, "zstd: out of memory for a page delta compressor") }
        guard let d = ZSTD_createDCtx() else {
            ZSTD_freeCCtx(c)
            throw RepositoryError(.failed, "zstd: out of memory for a page delta decompressor")
        }
        cctx = c
        dctx = d
        scratch = .allocate(byteCount: PagedStream.pageSize, alignment: 64)
        // The page's size is known to every reader, and the delta lies in an authenticated chunk:
        // neither the frame's content size nor its checksum is worth its bytes.
        _ = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, Self.zstdLevel)
        _ = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)
        _ = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0)
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        ZSTD_freeDCtx(dctx)
        scratch.deallocate()
    }

    /// Writes the delta that turns `old` into `new` (both one page) into `out`: the bytes
    /// written; 0 when the pages are equal; nil when no delta fits in `out` (store the page whole).
    public func encode(new: UnsafeRawBufferPointer, old: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        guard out.count > 1 else { return nil }
        let body = UnsafeMutableRawBufferPointer(rebasing: out[1...])
        if let n = Self.encodeRuns(new: new, old: old, into: body) {
            if n == 0 { return 0 }
            out[0] = Self.runsKind
            return 1 + n
        }
        // A failure here (the frame does not fit in `out`) only means the page is stored whole.
        guard ZSTD_isError(ZSTD_CCtx_refPrefix(cctx, old.baseAddress, old.count)) == 0 else { return nil }
        let n = ZSTD_compress2(cctx, body.baseAddress, body.count, new.baseAddress, new.count)
        guard ZSTD_isError(n) == 0 else {
            _ = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only)
            return nil
        }
        out[0] = Self.zstdKind
        return 1 + n
    }

    /// Turns `page`, holding the base page, into the page `delta` describes; false when the delta
    /// is damaged (a run past the page, a frame that does not decode to exactly one page, an
    /// unknown kind).
    public func apply(_ delta: UnsafeRawBufferPointer, to page: UnsafeMutableRawBufferPointer) -> Bool {
        guard let kind = delta.first else { return false }
        let body = UnsafeRawBufferPointer(rebasing: delta[1...])
        switch kind {
        case Self.runsKind:
            return Self.applyRuns(body, to: page)
        case Self.zstdKind:
            guard page.count == scratch.count, ZSTD_isError(ZSTD_DCtx_refPrefix(dctx, page.baseAddress, page.count)) == 0 else { return false }
            let n = ZSTD_decompressDCtx(dctx, scratch.baseAddress, scratch.count, body.baseAddress, body.count)
            guard ZSTD_isError(n) == 0, n == page.count else {
                _ = ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only)
                return false
            }
            page.copyMemory(from: UnsafeRawBufferPointer(scratch))
            return true
        default:
            return false
        }
    }

    /// Writes the runs that turn `old` into `new` into `out`, each a UInt16 offset, a UInt16
    /// length and the new bytes; stretches of fewer than ``runGap`` equal bytes stay inside a
    /// run. The bytes written, 0 when the pages are equal, nil when the runs do not fit.
    static func encodeRuns(new: UnsafeRawBufferPointer, old: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        let n = new.count
        let a = new.baseAddress!, b = old.baseAddress!
        var i = 0, w = 0
        while i < n {
            while i + 8 <= n && a.loadUnaligned(fromByteOffset: i, as: UInt64.self) == b.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                i += 8
            }
            while i < n && a.load(fromByteOffset: i, as: UInt8.self) == b.load(fromByteOffset: i, as: UInt8.self) { i += 1 }
            guard i < n else { break }
            let start = i
            var end = i + 1
            var j = i + 1
            while j < n && j - end < runGap {
                if a.load(fromByteOffset: j, as: UInt8.self) != b.load(fromByteOffset: j, as: UInt8.self) { end = j + 1 }
                j += 1
            }
            let len = end - start
            guard out.count - w >= 4 + len else { return nil }
            out.storeBytes(of: UInt16(start).littleEndian, toByteOffset: w, as: UInt16.self)
            out.storeBytes(of: UInt16(len).littleEndian, toByteOffset: w + 2, as: UInt16.self)
            (out.baseAddress! + w + 4).copyMemory(from: a + start, byteCount: len)
            w += 4 + len
            i = end
        }
        return w
    }

    /// Writes the runs in `runs` over `page`; false when a run is truncated or reaches past it.
    static func applyRuns(_ runs: UnsafeRawBufferPointer, to page: UnsafeMutableRawBufferPointer) -> Bool {
        var at = 0
        while at < runs.count {
            guard runs.count - at >= 4 else { return false }
            let o = Int(UInt16(littleEndian: runs.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            let n = Int(UInt16(littleEndian: runs.loadUnaligned(fromByteOffset: at + 2, as: UInt16.self)))
            at += 4
            guard n <= runs.count - at, o + n <= page.count else { return false }
            (page.baseAddress! + o).copyMemory(from: runs.baseAddress! + at, byteCount: n)
            at += n
        }
        return true
    }
}
