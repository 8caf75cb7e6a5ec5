import Testing
import TresorCore

@Suite("FastCDC")
struct FastCDCTests {
    /// Small parameters used by most tests: many chunks from a few MiB of data.
    static let small = (min: 16 << 10, avg: 64 << 10, max: 256 << 10)

    static func smallChunker(seed: UInt64 = 7) -> FastCDC {
        FastCDC(minSize: small.min, averageSize: small.avg, maxSize: small.max, seed: seed)
    }

    // MARK: Determinism and shape

    @Test("same data and seed give the same lengths; lengths cover the data and respect the bounds")
    func deterministicAndWellFormed() {
        // Random data with a long zero run in the middle, which has no content-defined cut
        // points and so must be split at maxSize.
        let data =
            TestData.random(count: 4 << 20, seed: 1)
            + [UInt8](repeating: 0, count: 3 * Self.small.max)
            + TestData.random(count: 4 << 20, seed: 2)
        let a = Self.smallChunker().chunkLengths(data)
        let b = Self.smallChunker().chunkLengths(data)

        #expect(a == b)
        #expect(a.reduce(0, +) == data.count)
        #expect(a.count > 50)
        for length in a.dropLast() {
            #expect((Self.small.min...Self.small.max).contains(length))
        }
        #expect(a.contains(Self.small.max), "the zero run must be cut at maxSize")
    }

    @Test("short and empty input")
    func shortInput() {
        let cdc = FastCDC(minSize: 1024, averageSize: 4096, maxSize: 16384, seed: 3)
        #expect(cdc.chunkLengths([]) == [])
        let empty: [UInt8] = []
        #expect(empty.withUnsafeBytes { cdc.cut($0) } == 0)
        for count in [1, 63, 64, 1023, 1024] {
            let data = TestData.random(count: count, seed: UInt64(count))
            #expect(data.withUnsafeBytes { cdc.cut($0) } == count)
            #expect(cdc.chunkLengths(data) == [count])
        }
        // Just past minSize: the result is a whole chunk of at least minSize bytes.
        let data = TestData.random(count: 1025, seed: 9)
        let n = data.withUnsafeBytes { cdc.cut($0) }
        #expect(n == 1024 || n == 1025)
    }

    @Test("data without cut points is split at exactly maxSize")
    func hardCutAtMaxSize() {
        let cdc = FastCDC(minSize: 1024, averageSize: 4096, maxSize: 16384, seed: 3)
        let data = [UInt8](repeating: 0xAB, count: 5 * 16384 + 100)
        #expect(cdc.chunkLengths(data) == [16384, 16384, 16384, 16384, 16384, 100])
        // A buffer longer than maxSize is never cut past maxSize.
        let random = TestData.random(count: 1 << 20, seed: 4)
        let n = random.withUnsafeBytes { cdc.cut($0) }
        #expect(n >= 1024 && n <= 16384)
    }

    // MARK: Buffering

    @Test("boundaries do not depend on how much beyond maxSize the caller buffers")
    func bufferingIndependence() {
        let data =
            TestData.random(count: 3 << 20, seed: 5)
            + [UInt8](repeating: 0, count: 600 << 10)
            + TestData.random(count: (1 << 20) + 12345, seed: 6)
        let cdc = Self.smallChunker()

        var exact: [Int] = []
        var whole: [Int] = []
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let remaining = raw.count - offset
                // A fresh buffer holding exactly min(maxSize, remaining) bytes, as a streaming
                // reader with a maxSize buffer would pass.
                let window = Array(raw[offset..<offset + min(cdc.maxSize, remaining)])
                let a = window.withUnsafeBytes { cdc.cut($0) }
                let b = cdc.cut(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                exact.append(a)
                whole.append(b)
                offset += b
            }
        }
        #expect(exact == whole)
        #expect(whole == cdc.chunkLengths(data))
        #expect(whole.count > 40)
    }

    // MARK: Content definition

    @Test("inserting 100 bytes changes only the chunks next to the edit")
    func insertionResilience() {
        let original = TestData.random(count: 16 << 20, seed: 11)
        let editOffset = original.count / 2
        var edited = original
        edited.insert(contentsOf: TestData.random(count: 100, seed: 12), at: editOffset)

        let cdc = Self.smallChunker()
        let before = cdc.chunkLengths(original)
        let after = cdc.chunkLengths(edited)

        let oldBounds = boundaries(before)
        let newBounds = Set(boundaries(after))
        // Every boundary up to the edit is kept.
        let lostBefore = oldBounds.filter { $0 <= editOffset && !newBounds.contains($0) }
        #expect(lostBefore.isEmpty, "boundaries lost before the edit: \(lostBefore)")
        // Boundaries from the end of the second chunk after the edited one are kept, shifted.
        let editedChunk = oldBounds.firstIndex { $0 > editOffset }!
        let lostAfter = oldBounds.dropFirst(editedChunk + 2).filter { !newBounds.contains($0 + 100) }
        #expect(lostAfter.isEmpty, "boundaries lost after the edit: \(lostAfter)")

        let oldChunks = chunks(original, before)
        let newChunks = Set(chunks(edited, after))
        let shared = oldChunks.filter { newChunks.contains($0) }.count
        #expect(Double(shared) >= 0.9 * Double(oldChunks.count), "\(shared) of \(oldChunks.count) chunks kept")
        #expect(oldChunks.count - shared <= 3, "the edit touched \(oldChunks.count - shared) chunks")
    }

    @Test("average chunk size is near averageSize and the distribution is normalized")
    func averageSize() {
        let data = TestData.random(count: 64 << 20, seed: 13)
        let p = Self.small
        let lengths = Self.smallChunker().chunkLengths(data)
        let mean = Double(data.count) / Double(lengths.count)
        #expect(mean >= 0.75 * Double(p.avg) && mean <= 1.25 * Double(p.avg), "mean \(mean)")
        for length in lengths.dropLast() {
            #expect(length >= p.min && length <= p.max)
        }
        // Normalized chunking (level 2) makes cuts rare before averageSize and frequent after:
        // on random data ~17% of chunks are shorter than averageSize and ~1.5% longer than
        // twice it. A single mask with log2(averageSize) bits would give ~53% and ~17%.
        let shorter = Double(lengths.dropLast().filter { $0 < p.avg }.count) / Double(lengths.count - 1)
        let longer = Double(lengths.dropLast().filter { $0 > 2 * p.avg }.count) / Double(lengths.count - 1)
        #expect(shorter > 0.08 && shorter < 0.30, "\(shorter) of chunks shorter than averageSize")
        #expect(longer < 0.05, "\(longer) of chunks longer than 2 × averageSize")
    }

    @Test("different seeds cut the same data at different places")
    func seedsChangeBoundaries() {
        let data = TestData.random(count: 4 << 20, seed: 17)
        let a = boundaries(Self.smallChunker(seed: 1).chunkLengths(data)).dropLast()
        let b = Set(boundaries(Self.smallChunker(seed: 2).chunkLengths(data)).dropLast())
        let common = a.filter { b.contains($0) }.count
        #expect(a.count > 20 && b.count > 20)
        #expect(Double(common) < 0.1 * Double(a.count), "\(common) of \(a.count) boundaries shared")
    }

    // MARK: Format

    // THESE VALUES PIN THE ON-DISK FORMAT. Chunk boundaries decide chunk ids, so a change to
    // the gear table derivation, the masks, the cut rule or the warm-up start changes every
    // chunk of every existing repository and breaks deduplication against it. If this test
    // fails, the change is a format change: revert it, or version the format and document it.
    // The input is `TestData.lcg` (MMIX LCG, top byte of the state per step, state 0 at the
    // start) and the seed is ASCII "Tresor", so the vectors can be reproduced from the format
    // documentation alone.
    @Test("golden chunk lengths for a fixed seed and input")
    func goldenLengths() {
        let small = FastCDC(minSize: 4096, averageSize: 16384, maxSize: 65536, seed: 0x5472_6573_6F72)
        let smallLengths = small.chunkLengths(TestData.lcg(count: 1 << 20))
        #expect(smallLengths.count > 5)
        #expect(Array(smallLengths.prefix(5)) == [29940, 27434, 13772, 38520, 16430])

        let large = FastCDC(minSize: 256 << 10, averageSize: 1 << 20, maxSize: 4 << 20, seed: 0x5472_6573_6F72)
        let largeLengths = large.chunkLengths(TestData.lcg(count: 8 << 20))
        #expect(largeLengths.count > 5)
        #expect(Array(largeLengths.prefix(5)) == [1_408_401, 1_372_310, 641_275, 1_438_043, 311_540])

        // Tiny sizes, where most cuts fall within 64 bytes of minSize and so also pin where
        // the hash starts (minSize - 64).
        let tiny = FastCDC(minSize: 100, averageSize: 128, maxSize: 1024, seed: 0x5472_6573_6F72)
        let tinyLengths = tiny.chunkLengths(TestData.lcg(count: 4096))
        #expect(tinyLengths.count > 10)
        #expect(Array(tinyLengths.prefix(10)) == [154, 177, 135, 137, 128, 130, 128, 130, 370, 131])
    }

    @Test(
        "agrees with a byte-by-byte model written from the documented algorithm",
        arguments: [
            (1, 64, 256), (48, 256, 1024), (100, 256, 2000), (200, 256, 256),
            (256, 256, 4096), (64, 1024, 8192), (1000, 1024, 1100), (101, 128, 1001), (63, 64, 65),
        ])
    func matchesSpecification(parameters: (Int, Int, Int)) {
        let (minSize, avg, maxSize) = parameters
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog ", count: 200).utf8)
        let data =
            TestData.random(count: 96 << 10, seed: 19)
            + [UInt8](repeating: 0, count: 5000)
            + text
            + TestData.random(count: 32 << 10, seed: 20)
        for seed: UInt64 in [0, 1, 0xDEAD_BEEF_CAFE_F00D] {
            let cdc = FastCDC(minSize: minSize, averageSize: avg, maxSize: maxSize, seed: seed)
            let model = SpecModel(minSize: minSize, averageSize: avg, maxSize: maxSize, seed: seed)
            #expect(cdc.chunkLengths(data) == model.chunkLengths(data), "seed \(seed)")
        }
    }

    @Test("the model's gear table is splitmix64")
    func splitmix64Vector() {
        // Published first outputs of splitmix64 with seed 0, which checks the model (and so,
        // through matchesSpecification, the implementation) against the reference generator.
        let gear = SpecModel.gear(seed: 0)
        #expect(gear[0] == 0xE220_A839_7B1D_CDAF)
        #expect(gear[1] == 0x6E78_9E6A_A1B9_65F4)
        #expect(gear[2] == 0x06C4_5D18_8009_454F)
    }
}

// MARK: Helpers

/// Offsets at which chunks end, in order.
private func boundaries(_ lengths: [Int]) -> [Int] {
    var offset = 0
    return lengths.map {
        offset += $0; return offset
    }
}

private func chunks(_ data: [UInt8], _ lengths: [Int]) -> [ArraySlice<UInt8>] {
    var offset = 0
    return lengths.map { n in
        defer { offset += n }
        return data[offset..<offset + n]
    }
}

/// Deterministic test inputs, independent of the code under test.
private enum TestData {
    /// Pseudo-random bytes: a 64-bit LCG whose state is mixed into 8 output bytes per step.
    static func random(count: Int, seed: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var x = seed
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i < count {
                x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                var z = (x ^ (x >> 33)) &* 0xFF51_AFD7_ED55_8CCD
                z ^= z >> 33
                for k in 0..<min(8, count - i) {
                    raw[i + k] = UInt8(truncatingIfNeeded: z >> (8 * UInt64(k)))
                }
                i += 8
            }
        }
        return out
    }

    /// The golden-test input: state starts at 0; per byte, state = state × 6364136223846793005
    /// + 1442695040888963407 (mod 2^64), and the byte is the top 8 bits of the new state.
    static func lcg(count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var x: UInt64 = 0
        out.withUnsafeMutableBytes { raw in
            for i in 0..<count {
                x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                raw[i] = UInt8(truncatingIfNeeded: x >> 56)
            }
        }
        return out
    }
}

/// A direct, unoptimized transcription of the algorithm as documented on ``FastCDC``: a
/// second implementation to check the optimized loop against, not a copy of it.
private struct SpecModel {
    let minSize: Int, averageSize: Int, maxSize: Int
    let gear: [UInt64]
    let maskS: UInt64, maskL: UInt64

    init(minSize: Int, averageSize: Int, maxSize: Int, seed: UInt64) {
        self.minSize = minSize
        self.averageSize = averageSize
        self.maxSize = maxSize
        gear = Self.gear(seed: seed)
        let k = Int(log2Exact(averageSize))
        maskS = Self.spreadMask(k + 2)
        maskL = Self.spreadMask(k - 2)
    }

    static func gear(seed: UInt64) -> [UInt64] {
        var state = seed
        var table: [UInt64] = []
        for _ in 0...255 {
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            table.append(z ^ (z >> 31))
        }
        return table
    }

    static func spreadMask(_ n: Int) -> UInt64 {
        var mask: UInt64 = 0
        for j in 0..<n { mask |= UInt64(1) << UInt64(63 - (48 * j) / n) }
        return mask
    }

    /// Length of the chunk starting at `start`, where the stream ends at `data.count`.
    func chunk(_ data: [UInt8], from start: Int) -> Int {
        let remaining = data.count - start
        if remaining <= minSize { return remaining }
        let limit = Swift.min(maxSize, remaining)
        var fp: UInt64 = 0
        for i in Swift.max(0, minSize - 64)..<limit {
            fp = (fp << 1) &+ gear[Int(data[start + i])]
            let length = i + 1
            guard length >= minSize, length < limit else { continue }
            let mask = length < averageSize ? maskS : maskL
            if fp & mask == 0 { return length }
        }
        return limit
    }

    func chunkLengths(_ data: [UInt8]) -> [Int] {
        var lengths: [Int] = []
        var start = 0
        while start < data.count {
            let n = chunk(data, from: start)
            lengths.append(n)
            start += n
        }
        return lengths
    }
}

private func log2Exact(_ n: Int) -> Int {
    var k = 0
    while 1 << k < n { k += 1 }
    precondition(1 << k == n)
    return k
}
