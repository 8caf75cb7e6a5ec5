import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorStore
import TresorTestSupport

@testable import TresorRepository

@Suite struct CompressibilityProbeTests {
    private func probe(_ data: [UInt8]) -> Bool {
        data.withUnsafeBytes { CompressibilityProbe.isIncompressible($0) }
    }

    @Test func randomChunksAreRecognisedSoZstdIsNotRunOnThem() throws {
        var rng = SeededRandom(seed: 41)
        #expect(probe(rng.bytes(1 << 20)))
        #expect(probe(rng.bytes(CompressibilityProbe.minimumLength)))
        // The same random bytes through zstd: level 3 cannot shrink them, so skipping it loses nothing.
        let data = rng.bytes(256 << 10)
        #expect(probe(data))
        #expect(try ZstdCompressor(level: 3).compress(data).count >= data.count)
    }

    @Test func compressibleChunksAreNeverStoredRawByTheProbe() {
        var rng = SeededRandom(seed: 42)
        #expect(!probe(rng.text(1 << 20)))
        // Base64 of random bytes: 6 bits per byte, which zstd's literal coding still shrinks by ~25%.
        let base64 = Array(Data(rng.bytes(768 << 10)).base64EncodedString().utf8)
        #expect(!probe(base64))
        // Zeros and a two-byte alphabet.
        #expect(!probe([UInt8](repeating: 0, count: 1 << 20)))
        #expect(!probe((0..<(1 << 20)).map { UInt8($0 & 1) }))
    }

    @Test func textBetweenRandomStretchesKeepsTheChunkCompressed() {
        // A stretch of text one sample stride plus one sample long always covers a whole sample,
        // wherever it sits in the chunk.
        var rng = SeededRandom(seed: 43)
        let stretch = CompressibilityProbe.stride + CompressibilityProbe.sampleBytes
        for start in [0, 1, 4095, 100_000, 333_333, (1 << 20) - stretch] {
            var data = rng.bytes(1 << 20)
            let text = rng.text(stretch)
            data.replaceSubrange(start..<(start + stretch), with: text.prefix(stretch))
            #expect(!probe(data), "text at \(start) was missed")
        }
    }

    @Test func smallChunksAreLeftToZstd() {
        var rng = SeededRandom(seed: 44)
        #expect(!probe(rng.bytes(CompressibilityProbe.minimumLength - 1)))
        #expect(!probe([]))
    }

    @Test func probedRandomChunkIsStoredRawAndTextNextToItCompressed() throws {
        let temp = try TemporaryRepository(backing: .localDirectory)
        let repo = temp.repository
        let writer = try BlobWriter(repository: repo, index: RepositoryIndex(), settings: .init(policy: smallPolicy, uploaders: 1))
        let hmac = HMACSHA256(key: repo.keys.chunkID)
        var rng = SeededRandom(seed: 45)
        let random = rng.bytes(CompressibilityProbe.minimumLength)  // the small policy's largest chunk
        let text = Array(rng.text(CompressibilityProbe.minimumLength).prefix(CompressibilityProbe.minimumLength))
        for data in [random, text] {
            #expect(try data.withUnsafeBytes { try writer.add(id: hmac.mac(data), type: .data, data: $0) })
        }
        _ = try writer.finish()
        let index = try repo.loadIndex()
        let opener = try BlobOpener(keys: repo.keys)
        #expect(index.location(of: hmac.mac(random))?.compression == BlobCompression.none)
        #expect(index.location(of: hmac.mac(random))?.length == UInt32(random.count + AESGCM.overhead))
        #expect(index.location(of: hmac.mac(text))?.compression == .zstd)
        #expect(try repo.readBlob(hmac.mac(random), index: index, opener: opener) == random)
        #expect(try repo.readBlob(hmac.mac(text), index: index, opener: opener) == text)
    }
}
