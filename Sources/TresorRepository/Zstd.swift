internal import CZstd
import TresorCore

/// A zstd compression or decompression failure: corrupt or truncated input, an output size
/// other than expected, a buffer too small, or an invalid level.
///
/// The message names the operation and zstd's own reason. ``kind`` is ``FailureKind/usage``
/// for an invalid compression level (a configuration mistake) and ``FailureKind/failed``
/// otherwise. Every value is built by one initialiser, fed either by ``zstdCheck(_:_:)`` (which
/// reads `ZSTD_isError`/`ZSTD_getErrorName`) or by a size check of this file.
public struct ZstdError: TresorFailure {
    /// ``FailureKind/usage`` for a bad compression level, else ``FailureKind/failed``.
    public let kind: FailureKind
    /// One lowercase line: the operation and the reason, e.g. `zstd decompress: data corruption detected`.
    public let message: String
    /// How to fix it, when there is something the user can do.
    public let hint: String?

    fileprivate init(_ operation: String, _ reason: String, kind: FailureKind = .failed, hint: String? = nil) {
        self.kind = kind
        self.message = "zstd \(operation): \(reason)"
        self.hint = hint
    }
}

/// Returns `result` if it is a size, or throws the ``ZstdError`` that zstd encoded in it.
/// The only place zstd error codes are interpreted.
private func zstdCheck(_ result: Int, _ operation: String) throws -> Int {
    guard ZSTD_isError(result) != 0 else { return result }
    throw ZstdError(operation, String(cString: ZSTD_getErrorName(result)).lowercased())
}

/// A valid pointer for an empty buffer, whose base address Swift may report as nil; zstd
/// never reads or writes through it because the length passed alongside is 0.
nonisolated(unsafe) private let emptyBuffer = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

/// How one frame is compressed: a zstd level and, for chunks of B-tree index pages, match
/// finding tuned to their layout. The output is a standard frame either way; only the encoder's
/// choices differ, so readers need not know.
public struct ZstdSetting: Sendable, Hashable {
    /// The compression level (``ZstdCompressor`` checks its range).
    public var level: Int
    /// Tuned for index pages: B-tree leaves are runs of 16-byte tuples, each differing from the
    /// one before in a few bytes, so what pays is a lazy match search (level 6 and above) that
    /// takes repeat offsets; at those levels, matches of at least 6 bytes (not 4 or 5), one search
    /// attempt per position and the hash-chain match finder rather than the row-based one find
    /// the same matches with less work. pgbench's primary key in 128 KiB chunks at level 6: 5%
    /// smaller and 1.4 to 1.9 times as fast as level 6's own parameters (measured with
    /// `zstd -b6 -B131072`, zstd 1.5.4). Below level 6 it changes nothing.
    public var indexPages: Bool

    public init(level: Int, indexPages: Bool = false) {
        self.level = level
        self.indexPages = indexPages
    }
}

/// Compresses buffers into single, self-describing zstd frames (content size and an XXH64
/// checksum of the content recorded in the frame header and trailer, 4 bytes of overhead).
///
/// Not thread-safe: use one instance per thread (it is deliberately not `Sendable`). Owns a
/// `ZSTD_CCtx`, allocated in `init`, reused by every call (its work buffers are allocated on the
/// first call and kept) and freed in `deinit`. Level 3 runs at a few hundred MB/s per core.
public final class ZstdCompressor {
    private let context: OpaquePointer
    /// The compression level this instance uses unless a call names another.
    public let level: Int
    /// The setting the context has now.
    private var current: ZstdSetting

    /// A compressor at `level`, which must lie in `ZSTD_minCLevel()...ZSTD_maxCLevel()`
    /// (negative levels are faster, 1–19 normal, 20–22 slow and memory-hungry; 0 means zstd's
    /// default, 3). Throws a ``FailureKind/usage`` ``ZstdError`` for a level out of range.
    ///
    /// `workers` above 0 compresses one large input on that many threads (zstd's own), for
    /// latency-bound single objects such as a WAL segment; output stays one standard frame.
    public init(level: Int, workers: Int = 0) throws {
        let range = Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel())
        guard range.contains(level) else {
            throw ZstdError(
                "compressor", "compression level \(level) is outside \(range.lowerBound)...\(range.upperBound)",
                kind: .usage, hint: "use a level from 1 (fast) to 19 (small); 3 is the default")
        }
        guard let context = ZSTD_createCCtx() else { throw ZstdError("compressor", "out of memory") }
        self.context = context  // from here on, deinit frees it even if init throws
        self.level = level
        self.current = ZstdSetting(level: level)
        _ = try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)), "set level")
        _ = try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "enable checksum")
        if workers > 0 {
            // A libzstd built without threads refuses this; compressing on one thread is fine then.
            _ = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(workers))
        }
    }

    deinit {
        ZSTD_freeCCtx(context)
    }

    /// The largest compressed size of `size` input bytes (`ZSTD_compressBound`): a destination
    /// this large never makes ``compress(_:into:)`` fail for lack of space. Costs nothing.
    public static func bound(_ size: Int) -> Int {
        precondition(size >= 0, "size must not be negative")
        let bound = ZSTD_compressBound(size)
        precondition(ZSTD_isError(bound) == 0, "input of \(size) bytes is too large for zstd")
        return bound
    }

    /// Compresses all of `src` into one frame at the start of `dst` and returns its length.
    ///
    /// `dst` should hold ``bound(_:)`` of `src.count` bytes; with less, it throws if the frame
    /// does not fit. `dst` must not overlap `src`. Allocates nothing after the first call.
    public func compress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws -> Int {
        try compress(src, into: dst, level: level)
    }

    /// As ``compress(_:into:)``, at `level` for this frame (a level outside zstd's range
    /// throws a ``FailureKind/usage`` ``ZstdError``). Changing the level between calls costs a
    /// parameter update, no allocation; the context keeps the last level set.
    public func compress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, level: Int) throws -> Int {
        try compress(src, into: dst, setting: ZstdSetting(level: level))
    }

    /// As ``compress(_:into:)``, with `setting` for this frame. Changing the setting between
    /// calls costs a few parameter updates, no allocation; the context keeps the last one.
    public func compress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, setting: ZstdSetting) throws -> Int {
        if setting != current { try apply(setting) }
        return try zstdCheck(
            ZSTD_compress2(
                context, dst.baseAddress ?? emptyBuffer, dst.count,
                src.baseAddress ?? UnsafeRawPointer(emptyBuffer), src.count), "compress")
    }

    /// The hash and chain table sizes (log 2) of the index-page tuning.
    static let indexHashLog: Int32 = 12
    static let indexChainLog: Int32 = 8

    /// Sets the context's level and the index-page tuning (0 restores the level's own value of a
    /// parameter).
    private func apply(_ setting: ZstdSetting) throws {
        _ = try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(setting.level)), "set level")
        let tuned = setting.indexPages && setting.level >= 6
        _ = try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_minMatch, tuned ? 6 : 0), "set minimum match")
        _ = try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_searchLog, tuned ? 1 : 0), "set search log")
        // ZSTD_c_useRowMatchFinder: ZSTD_ps_disable (2) or ZSTD_ps_auto (0); zstd.h names them
        // only under ZSTD_STATIC_LINKING_ONLY, which the shim does not define.
        _ = try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_experimentalParam14, tuned ? 2 : 0), "set row match finder")
        // Small match-finder tables: B-tree leaves repeat within a page, so 2^12 hash and 2^8
        // chain entries find as much as the level's own (sized for inputs of megabytes) with
        // fewer cache misses: pgbench's primary key in 512 KiB chunks stored 1% smaller for
        // about 20% less compression CPU (Benchmarks/README.md, basebackup8).
        _ = try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_hashLog, tuned ? Self.indexHashLog : 0), "set hash log")
        _ = try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_chainLog, tuned ? Self.indexChainLog : 0), "set chain log")
        current = setting
    }

    /// Compresses `src` into a new array holding one frame. Costs one allocation of
    /// ``bound(_:)`` bytes (the array keeps that capacity).
    public func compress(_ src: [UInt8]) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: Self.bound(src.count)) { dst, initialized in
            initialized = try src.withUnsafeBytes { try compress($0, into: UnsafeMutableRawBufferPointer(dst)) }
        }
    }
}

/// Decompresses single zstd frames whose raw size is known in advance (from the index).
///
/// Not thread-safe: use one instance per thread (it is deliberately not `Sendable`). Owns a
/// `ZSTD_DCtx`, allocated in `init`, reused by every call and freed in `deinit`. Verifies the
/// frame's content checksum when it has one (frames from ``ZstdCompressor`` do).
public final class ZstdDecompressor {
    private let context: OpaquePointer

    /// A decompressor. Allocates one zstd context; throws only if memory is exhausted.
    public init() throws {
        guard let context = ZSTD_createDCtx() else { throw ZstdError("decompressor", "out of memory") }
        self.context = context
    }

    deinit {
        ZSTD_freeDCtx(context)
    }

    /// Decompresses `src`, which must be exactly one complete zstd frame, into `dst` and
    /// returns the raw length, always `dst.count`.
    ///
    /// Throws if `src` is not exactly one frame (truncated, trailing bytes, a second frame), if
    /// it is corrupt or its checksum does not match, or if its content is not exactly
    /// `dst.count` bytes. On a throw the contents of `dst` are unspecified. `dst` must not
    /// overlap `src`. Allocates nothing after the first call.
    public func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws -> Int {
        let source = src.baseAddress ?? UnsafeRawPointer(emptyBuffer)
        let frameSize = try zstdCheck(ZSTD_findFrameCompressedSize(source, src.count), "decompress")
        guard frameSize == src.count else {
            throw ZstdError("decompress", "\(src.count - frameSize) bytes follow the frame")
        }
        let declared = ZSTD_getFrameContentSize(source, src.count)
        if declared != ZSTD_CONTENTSIZE_UNKNOWN, declared != ZSTD_CONTENTSIZE_ERROR, declared != UInt64(dst.count) {
            throw ZstdError("decompress", "frame holds \(declared) bytes, expected \(dst.count)")
        }
        let written = try zstdCheck(
            ZSTD_decompressDCtx(
                context, dst.baseAddress ?? emptyBuffer, dst.count,
                source, src.count), "decompress")
        guard written == dst.count else {
            throw ZstdError("decompress", "frame holds \(written) bytes, expected \(dst.count)")
        }
        return written
    }

    /// Decompresses the single frame `src` into a new array of exactly `rawSize` bytes; see
    /// ``decompress(_:into:)``. Costs one allocation of `rawSize` bytes.
    public func decompress(_ src: [UInt8], rawSize: Int) throws -> [UInt8] {
        precondition(rawSize >= 0, "rawSize must not be negative")
        return try [UInt8](unsafeUninitializedCapacity: rawSize) { dst, initialized in
            initialized = try src.withUnsafeBytes { try decompress($0, into: UnsafeMutableRawBufferPointer(dst)) }
        }
    }
}
