import Testing
import TresorCrypto

@Suite("SecureRandom and constantTimeEquals")
struct RandomTests {
    @Test("bytes returns the requested count and differs between calls")
    func bytes() {
        #expect(SecureRandom.bytes(0).isEmpty)
        let a = SecureRandom.bytes(32), b = SecureRandom.bytes(32)
        #expect(a.count == 32 && b.count == 32)
        #expect(a != b)  // a collision has probability 2^-256
    }

    @Test("fill overwrites the whole buffer")
    func fill() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        buffer.withUnsafeMutableBytes { SecureRandom.fill($0) }
        // 4096 uniform bytes show ~255 distinct values; fewer than 200 is astronomically unlikely.
        #expect(Set(buffer).count > 200)
        #expect(buffer.suffix(64).contains { $0 != 0 })
    }

    @Test("constantTimeEquals")
    func equals() {
        #expect(constantTimeEquals([], []))
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(!constantTimeEquals([0], []))
    }
}
