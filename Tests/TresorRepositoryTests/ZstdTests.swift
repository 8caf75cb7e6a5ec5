import Testing
import TresorCore
import TresorRepository

@Suite("Zstd")
struct ZstdTests {
    static func hex(_ text: String) -> [UInt8] {
        guard let bytes = Hex.decode(text) else { fatalError("bad hex in test vector") }
        return bytes
    }

    /// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
    static func noise(_ count: Int, seed: UInt64 = 0x9e37_79b9_7f4a_7c15) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            return UInt8(truncatingIfNeeded: (state &* 0x2545_f491_4f6c_dd1d) >> 56)
        }
    }

    /// Log-like text: repetitive, so zstd should shrink it several times over.
    static func text(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 100)
        var i = 0
        while out.count < count {
            out += Array("2026-04-01T02:\(i % 60):00Z tenant=acme file=/srv/docs/report-\(i % 97).pdf status=unchanged\n".utf8)
            i += 1
        }
        return Array(out.prefix(count))
    }

    static let payloads: [(name: String, bytes: [UInt8])] = [
        ("empty", []),
        ("one byte", [42]),
        ("small", Array("Tresor keeps every byte.".utf8)),
        ("1 MiB random", noise(1 << 20)),
        ("1 MiB text", text(1 << 20)),
    ]

    // Made with the zstd 1.5.4 CLI (`zstd --check -19`) from the 75-byte line below: proves we
    // read frames another implementation wrote.
    static let cliText = Array("Tresor keeps every byte. Tresor keeps every byte. Tresor keeps every byte.\n".utf8)
    static let cliFrame = hex("28b52ffd244b0d0100d0547265736f72206b6565707320657665727920627974652e200a0100c9d11c03aca05f1d")
    // Made with `printf ... | zstd --check`: a streamed frame that does not record its size (63 bytes).
    static let cliStreamText = Array("streamed without a size header, streamed without a size header\n".utf8)
    static let cliStreamFrame = hex("28b52ffd04584d0100140273747265616d656420776974686f757420612073697a65206865616465722c200a010018a27a021017d657")

    @Test("round trip at several levels", arguments: 0..<5, [1, 3, 19, -5])
    func roundTrip(payload: Int, level: Int) throws {
        let (_, bytes) = Self.payloads[payload]
        let compressor = try ZstdCompressor(level: level)
        let frame = try compressor.compress(bytes)
        #expect(frame.count <= ZstdCompressor.bound(bytes.count))
        #expect(try ZstdDecompressor().decompress(frame, rawSize: bytes.count) == bytes)
    }

    /// 16 pages laid out like B-tree leaves of an int4 primary key: a 24-byte header, line
    /// pointers, then 16-byte tuples (heap TID, size, key, padding) with keys counting up.
    static func btreeLeaves() -> [UInt8] {
        var out: [UInt8] = []
        var key: UInt32 = 1
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        for _ in 0..<16 {
            var page = [UInt8](repeating: 0, count: 8192)
            let tuples = 400
            page.replaceSubrange(12..<20, with: le(UInt16(24 + 4 * tuples)) + le(UInt16(8176 - 16 * tuples)) + le(UInt16(8176)) + le(UInt16(8192 | 4)))
            for t in 0..<tuples {
                let at = 8176 - 16 * (t + 1)
                page.replaceSubrange(24 + 4 * t..<28 + 4 * t, with: le(UInt32(at) | 1 << 15 | 16 << 17))
                let block = key / 61, item = UInt16(key % 61 + 1)
                page.replaceSubrange(
                    at..<at + 16, with: le(UInt16(block >> 16)) + le(UInt16(block & 0xffff)) + le(item) + le(UInt16(16)) + le(key) + [0, 0, 0, 0])
                key += 1
            }
            out += page
        }
        return out
    }

    @Test("the index-page setting reads back, changes the frame only from level 6, and the context forgets it")
    func indexPageSetting() throws {
        let pages = Self.btreeLeaves()
        let compressor = try ZstdCompressor(level: 3)
        func frame(_ setting: ZstdSetting) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: ZstdCompressor.bound(pages.count))
            let n = try pages.withUnsafeBytes { src in try out.withUnsafeMutableBytes { try compressor.compress(src, into: $0, setting: setting) } }
            return Array(out.prefix(n))
        }
        let tuned = try frame(ZstdSetting(level: 6, indexPages: true))
        #expect(try ZstdDecompressor().decompress(tuned, rawSize: pages.count) == pages)
        #expect(tuned.count < pages.count / 4)
        // After a tuned frame, plain frames are what a fresh compressor at that level makes.
        let plain6 = try frame(ZstdSetting(level: 6))
        #expect(plain6 == (try ZstdCompressor(level: 6).compress(pages)))
        #expect(plain6 != tuned)
        #expect(try frame(ZstdSetting(level: 3, indexPages: true)) == (try ZstdCompressor(level: 3).compress(pages)))
        #expect(try frame(ZstdSetting(level: 6, indexPages: true)) == tuned)
    }

    @Test("buffer API round trip, reusing both contexts")
    func bufferRoundTrip() throws {
        let compressor = try ZstdCompressor(level: 3)
        let decompressor = try ZstdDecompressor()
        for (name, bytes) in Self.payloads + Self.payloads {
            var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(bytes.count))
            let length = try bytes.withUnsafeBytes { src in
                try frame.withUnsafeMutableBytes { try compressor.compress(src, into: $0) }
            }
            var raw = [UInt8](repeating: 0xaa, count: bytes.count)
            let rawLength = try frame.withUnsafeBytes { f in
                try raw.withUnsafeMutableBytes { try decompressor.decompress(UnsafeRawBufferPointer(rebasing: f[..<length]), into: $0) }
            }
            #expect(rawLength == bytes.count, "\(name)")
            #expect(raw == bytes, "\(name)")
        }
    }

    @Test("concatenated frames decompress into one buffer; a wrong total or a cut frame throws")
    func concatenatedFrames() throws {
        let pieces = [Self.text(70_000), Self.noise(3_000), Self.text(10)]
        let compressor = try ZstdCompressor(level: 3)
        let frames = try pieces.flatMap { try compressor.compress($0) }
        let whole = pieces.flatMap { $0 }
        func decompress(_ src: [UInt8], size: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: size)
            _ = try src.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try ZstdDecompressor().decompressFrames(s, into: $0) } }
            return out
        }
        #expect(try decompress(frames, size: whole.count) == whole)
        #expect(throws: (any Error).self) { try decompress(frames, size: whole.count + 1) }
        #expect(throws: (any Error).self) { try decompress(frames, size: whole.count - 1) }
        #expect(throws: (any Error).self) { try decompress(Array(frames.dropLast(3)), size: whole.count) }
        // One frame alone is the single-frame case.
        #expect(try decompress(try compressor.compress(pieces[0]), size: pieces[0].count) == pieces[0])
    }

    @Test("compressible data shrinks, random data barely grows, and output is deterministic")
    func sizes() throws {
        let compressor = try ZstdCompressor(level: 3)
        let text = Self.text(1 << 20)
        let compressed = try compressor.compress(text)
        #expect(compressed.count < text.count / 10)
        #expect(try compressor.compress(text) == compressed)
        let random = Self.noise(1 << 20)
        let frame = try compressor.compress(random)
        #expect(frame.count > random.count && frame.count <= ZstdCompressor.bound(random.count))
        #expect(ZstdCompressor.bound(1 << 20) > 1 << 20)
        #expect(ZstdCompressor.bound(0) > 0)
    }

    @Test("reads frames written by the zstd command-line tool")
    func interoperates() throws {
        let decompressor = try ZstdDecompressor()
        #expect(try decompressor.decompress(Self.cliFrame, rawSize: 75) == Self.cliText)
        #expect(try decompressor.decompress(Self.cliStreamFrame, rawSize: 63) == Self.cliStreamText)
    }

    @Test("a wrong expected size throws", arguments: [0, 1, 62, 64, 74, 76, 1000])
    func wrongSize(rawSize: Int) throws {
        let decompressor = try ZstdDecompressor()
        if rawSize != 75 {
            #expect(throws: ZstdError.self) { try decompressor.decompress(Self.cliFrame, rawSize: rawSize) }
        }
        // The streamed frame has no size header, so this exercises the check after decoding.
        #expect(throws: ZstdError.self) { try decompressor.decompress(Self.cliStreamFrame, rawSize: rawSize) }
        let ours = try ZstdCompressor(level: 3).compress(Self.noise(63))
        #expect(throws: ZstdError.self) { try decompressor.decompress(ours, rawSize: rawSize) }
    }

    @Test("a frame with any single bit flipped throws or yields the original bytes, never others")
    func corruptEveryBit() throws {
        let decompressor = try ZstdDecompressor()
        for (frame, raw) in [
            (Self.cliFrame, Self.cliText),
            (try ZstdCompressor(level: 3).compress(Self.text(3000)), Self.text(3000)),
        ] {
            // A few bits are legitimately ignorable (the reserved header bit, some equivalent
            // entropy-table encodings); the content checksum then proves the output unchanged.
            var wrong: [Int] = [], rejected = 0
            for bit in 0..<(frame.count * 8) {
                var bad = frame
                bad[bit / 8] ^= UInt8(1) << (bit % 8)
                if let out = try? decompressor.decompress(bad, rawSize: raw.count) {
                    if out != raw { wrong.append(bit) }
                } else {
                    rejected += 1
                }
            }
            #expect(wrong.isEmpty, "corrupted frames decoded to different bytes at bits \(wrong)")
            #expect(rejected * 10 >= frame.count * 8 * 9, "only \(rejected) of \(frame.count * 8) flips rejected")
            #expect(try decompressor.decompress(frame, rawSize: raw.count) == raw)
        }
    }

    @Test("corrupt, truncated, extended and foreign input throws")
    func corrupt() throws {
        let decompressor = try ZstdDecompressor()
        let text = Self.text(100_000)
        let frame = try ZstdCompressor(level: 3).compress(text)
        // Damage in the middle of the compressed data.
        for position in [frame.count / 3, frame.count / 2, frame.count - 2] {
            var bad = frame
            bad[position] ^= 0x5a
            #expect(throws: ZstdError.self) { try decompressor.decompress(bad, rawSize: text.count) }
        }
        for length in [0, 1, 4, 5, 10, frame.count / 2, frame.count - 1] {
            #expect(throws: ZstdError.self) { try decompressor.decompress(Array(frame.prefix(length)), rawSize: text.count) }
        }
        #expect(throws: ZstdError.self) { try decompressor.decompress(frame + [0], rawSize: text.count) }
        #expect(throws: ZstdError.self) { try decompressor.decompress(frame + frame, rawSize: text.count) }
        #expect(throws: ZstdError.self) { try decompressor.decompress(frame + frame, rawSize: 2 * text.count) }
        #expect(throws: ZstdError.self) { try decompressor.decompress(Self.noise(4096), rawSize: 4096) }
        let error = #expect(throws: ZstdError.self) { try decompressor.decompress([], rawSize: 0) }
        #expect(error?.kind == .failed)
        #expect(error?.message.hasPrefix("zstd decompress: ") == true)
        // The context still works after all those failures.
        #expect(try decompressor.decompress(frame, rawSize: text.count) == text)
    }

    @Test("a destination that is too small throws")
    func smallDestination() throws {
        let compressor = try ZstdCompressor(level: 3)
        let random = Self.noise(10_000)
        var dst = [UInt8](repeating: 0, count: 100)
        #expect(throws: ZstdError.self) {
            try random.withUnsafeBytes { src in try dst.withUnsafeMutableBytes { try compressor.compress(src, into: $0) } }
        }
        #expect(try ZstdDecompressor().decompress(compressor.compress(random), rawSize: 10_000) == random)
    }

    @Test("levels outside zstd's range are a usage error", arguments: [23, 100, -200_000])
    func invalidLevel(level: Int) {
        let error = #expect(throws: ZstdError.self) { try ZstdCompressor(level: level) }
        #expect(error?.kind == .usage)
        #expect(error?.hint != nil)
    }
}
