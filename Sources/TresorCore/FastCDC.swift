/// FastCDC content-defined chunking with normalized chunking (level 2) and a seeded gear table.
///
/// A chunk ends where the content says so, not at a fixed offset, so inserting or deleting
/// bytes in a stream moves only the one or two chunk boundaries next to the edit; every other
/// chunk keeps its bytes and deduplicates against the previous backup.
///
/// ## Algorithm
///
/// Chunks are cut one after another; each search starts at the first byte of the new chunk.
/// For a chunk starting at byte 0 of `data`, with `limit = min(maxSize, data.count)`:
///
/// 1. If `data.count <= minSize`, the chunk is all of `data`.
/// 2. A gear hash runs over the bytes: `fp = (fp << 1) &+ gear[byte]` (64-bit, wrapping),
///    starting from `fp = 0` at byte `max(0, minSize - 64)`. Bit `b` of `fp` depends only on
///    the last `b + 1` bytes, so from byte 64 of the hashing on, `fp` is a function of the last
///    64 bytes alone. The hash over the first bytes of a chunk is skipped, since no cut may
///    happen there; starting 64 bytes before `minSize` makes every candidate cut a function of
///    its 64-byte window only.
/// 3. After the byte at index `i` has been hashed, the candidate chunk length is `L = i + 1`.
///    For `minSize <= L < limit`, the chunk ends at `L` if `fp & mask == 0`, where `mask` is
///    `maskS` while `L < averageSize` and `maskL` from `averageSize` on (normalized chunking:
///    cuts are rarer before the average size and likelier after it, which narrows the size
///    distribution around `averageSize`).
/// 4. Otherwise the chunk is `limit` bytes long: a hard cut at `maxSize`, or the end of the
///    stream.
///
/// With `averageSize = 2^k`, `maskS` has `k + 2` one-bits and `maskL` has `k - 2`. The bits are
/// spread over the upper 48 bits of the hash, where each bit depends on many bytes of the
/// window, rather than packed into the low bits (which depend only on the last few bytes):
///
///     spreadMask(n) = OR over j in 0..<n of (1 << (63 - (48 * j) / n))   (integer division)
///     maskS = spreadMask(k + 2),  maskL = spreadMask(k - 2)
///
/// ## Gear table (part of the repository format)
///
/// The 256-entry table is the first 256 outputs of splitmix64 seeded with `seed`:
///
///     state = seed
///     for i in 0...255:
///         state = state &+ 0x9E3779B97F4A7C15
///         z = state
///         z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
///         z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
///         gear[i] = z ^ (z >> 31)
///
/// (all arithmetic on UInt64, wrapping; `>>` is a logical shift). Chunk boundaries are a pure
/// function of (seed, minSize, averageSize, maxSize, bytes); changing any of these, the table
/// derivation or the masks changes every boundary, and so every chunk id, in a repository.
///
/// ## Guarantees and cost
///
/// Every chunk except the last of a stream is between `minSize` and `maxSize` bytes. With random
/// data, chunk lengths average about 1.1 × `averageSize` when `minSize = averageSize / 4`.
/// ``cut(_:)`` allocates nothing and reads each byte after `minSize - 64` once: one table load,
/// a shift, an add and a mask test per byte. The table (2 KiB) is built once in `init`.
public struct FastCDC: Sendable {
    public let minSize: Int, averageSize: Int, maxSize: Int

    /// The gear table; 256 entries, derived from the seed as described on the type.
    private let gear: [UInt64]
    /// Mask used for candidate lengths below `averageSize` (k + 2 one-bits).
    private let maskS: UInt64
    /// Mask used for candidate lengths from `averageSize` on (k - 2 one-bits).
    private let maskL: UInt64

    /// Creates a chunker.
    ///
    /// `seed` selects the gear table, so two tenants with different seeds cut the same data at
    /// different places and one tenant's chunk lengths cannot be matched against another's.
    /// Lengths still depend on the content; keep the seed secret (derive it from the tenant's
    /// key) so that they cannot be predicted from known content either.
    ///
    /// Requires `1 <= minSize <= averageSize <= maxSize` and `averageSize` a power of two between
    /// 2^6 and 2^40; violating this traps, because silently adjusting a parameter would change
    /// every boundary of a repository. Costs 256 splitmix64 steps and a 2 KiB allocation.
    public init(minSize: Int, averageSize: Int, maxSize: Int, seed: UInt64) {
        precondition(
            averageSize > 0 && averageSize & (averageSize - 1) == 0,
            "FastCDC averageSize must be a power of two, got \(averageSize)")
        let k = averageSize.trailingZeroBitCount
        precondition((6...40).contains(k), "FastCDC averageSize must be between 2^6 and 2^40, got \(averageSize)")
        precondition(
            minSize >= 1 && minSize <= averageSize && averageSize <= maxSize,
            "FastCDC needs 1 <= minSize <= averageSize <= maxSize, got \(minSize)/\(averageSize)/\(maxSize)")
        self.minSize = minSize
        self.averageSize = averageSize
        self.maxSize = maxSize
        self.gear = Self.gearTable(seed: seed)
        self.maskS = Self.spreadMask(oneBits: k + 2)
        self.maskL = Self.spreadMask(oneBits: k - 2)
    }

    /// Returns the length of the chunk that starts at `data[0]`.
    ///
    /// Contract: the caller passes at least `min(maxSize, bytes remaining in the stream)` bytes.
    /// The result is then a pure function of the stream's bytes, independent of how the caller
    /// buffers: bytes past `maxSize` are never read, and a buffer shorter than `maxSize` is
    /// taken to be the end of the stream. If `data.count <= minSize` the result is `data.count`;
    /// otherwise it lies in `minSize...min(maxSize, data.count)`. Empty `data` gives 0.
    ///
    /// Cost: O(result − minSize + 64) byte reads, no allocation, no bounds checks.
    public func cut(_ data: UnsafeRawBufferPointer) -> Int {
        let count = data.count
        if count <= minSize { return count }
        // count > minSize >= 1, so the buffer is not empty and has a base address.
        let bytes = data.baseAddress.unsafelyUnwrapped
        let limit = min(maxSize, count)
        let maskS = self.maskS, maskL = self.maskL
        return gear.withUnsafeBufferPointer { table -> Int in
            let gear = table.baseAddress.unsafelyUnwrapped
            var fp: UInt64 = 0
            var i = max(0, minSize - 64)
            // Warm-up: hash the bytes before the first candidate without testing them.
            let firstCandidate = minSize - 1
            while i < firstCandidate {
                fp = (fp &<< 1) &+ gear[Int(bytes.load(fromByteOffset: i, as: UInt8.self))]
                i &+= 1
            }
            // Candidate lengths L = i + 1 below averageSize use the strict mask, the rest the
            // loose one.
            if let cut = Self.scan(bytes, gear, &fp, &i, to: min(averageSize - 1, limit), mask: maskS) { return cut }
            if let cut = Self.scan(bytes, gear, &fp, &i, to: limit, mask: maskL) { return cut }
            return limit
        }
    }

    /// Hashes bytes `i..<end`, returning `i + 1` for the first `i` whose hash matches `mask`.
    /// Two bytes per step: `4·fp + (2·g0 + g1)` equals two single steps in wrapping arithmetic
    /// but leaves one dependent add per two bytes on the hash's critical path.
    @inline(__always)
    private static func scan(
        _ bytes: UnsafeRawPointer, _ gear: UnsafePointer<UInt64>, _ fp: inout UInt64,
        _ i: inout Int, to end: Int, mask: UInt64
    ) -> Int? {
        var h = fp, j = i
        while j &+ 1 < end {
            let g0 = gear[Int(bytes.load(fromByteOffset: j, as: UInt8.self))]
            let g1 = gear[Int(bytes.load(fromByteOffset: j &+ 1, as: UInt8.self))]
            if ((h &<< 1) &+ g0) & mask == 0 { return j &+ 1 }
            h = (h &<< 2) &+ ((g0 &<< 1) &+ g1)
            if h & mask == 0 { return j &+ 2 }
            j &+= 2
        }
        if j < end {
            h = (h &<< 1) &+ gear[Int(bytes.load(fromByteOffset: j, as: UInt8.self))]
            if h & mask == 0 { return j &+ 1 }
            j &+= 1
        }
        fp = h
        i = j
        return nil
    }

    /// Splits a whole in-memory buffer into chunk lengths, in order; they sum to `data.count`.
    /// Empty input gives no chunks. Costs one ``cut(_:)`` per chunk plus the result array.
    public func chunkLengths(_ data: [UInt8]) -> [Int] {
        data.withUnsafeBytes { raw in
            var lengths: [Int] = []
            lengths.reserveCapacity(raw.count / averageSize + 1)
            var offset = 0
            while offset < raw.count {
                let n = cut(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                lengths.append(n)
                offset += n
            }
            return lengths
        }
    }

    /// The first 256 outputs of splitmix64 seeded with `seed` (see the type's documentation).
    private static func gearTable(seed: UInt64) -> [UInt64] {
        var state = seed
        return (0..<256).map { _ in
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// `oneBits` bits spread evenly over bits 63 down to 16 (see the type's documentation).
    private static func spreadMask(oneBits n: Int) -> UInt64 {
        precondition((1...48).contains(n))
        var mask: UInt64 = 0
        for j in 0..<n { mask |= 1 &<< UInt64(63 - (48 * j) / n) }
        return mask
    }
}
