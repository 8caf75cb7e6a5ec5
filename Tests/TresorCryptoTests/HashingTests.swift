import Testing
import TresorCore
import TresorCrypto

@Suite("SHA-256")
struct SHA256Tests {
    // FIPS 180-2 appendix B and the NIST example values.
    @Test(
        "FIPS 180 vectors",
        arguments: [
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
        ])
    func vectors(message: String, digest: String) {
        #expect(SHA256.hash(Array(message.utf8)).hex == digest)
        let viaPointer = Array(message.utf8).withUnsafeBytes { SHA256.hash($0) }
        #expect(viaPointer.hex == digest)
    }

    @Test("one million 'a' (FIPS 180 long message)")
    func millionA() {
        #expect(
            SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000)).hex
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("streaming in pieces gives the published digest")
    func streaming() {
        let hasher = SHA256Hasher()
        hasher.update(Array("a".utf8))
        hasher.update([])
        hasher.update(Array("bc".utf8))
        #expect(hasher.finalize().hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

        // finalize() resets: the same hasher now digests a fresh message.
        let chunk = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { chunk.withUnsafeBytes { hasher.update($0) } }
        #expect(hasher.finalize().hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(hasher.finalize().hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }
}

@Suite("HMAC-SHA-256")
struct HMACTests {
    // RFC 4231 test cases 1, 2 and 6 (key longer than the block size).
    static let rfc4231: [(key: [UInt8], data: [UInt8], mac: String)] = [
        (
            [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        ),
        (
            Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ),
        (
            [UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        ),
    ]

    @Test("RFC 4231 vectors", arguments: 0..<3)
    func vectors(index: Int) {
        let vector = Self.rfc4231[index]
        let hmac = HMACSHA256(key: vector.key)
        #expect(hmac.mac(vector.data).hex == vector.mac)
        #expect(vector.data.withUnsafeBytes { hmac.mac($0) }.hex == vector.mac)
    }

    @Test("a reused instance keeps its key across calls")
    func reuse() {
        let hmac = HMACSHA256(key: [UInt8](repeating: 0x0b, count: 20))
        let hiThere = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        for _ in 0..<3 {
            #expect(hmac.mac(Array("Hi There".utf8)).hex == hiThere)
            _ = hmac.mac([UInt8](repeating: 7, count: 5000))
            _ = hmac.mac([])
        }
    }

    @Test("empty key and empty message (value from Python's hmac module)")
    func emptyKey() {
        #expect(HMACSHA256(key: []).mac([]).hex == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test("1 MiB message matches the RFC 2104 construction built from SHA-256")
    func largeMessage() {
        let key = Array("tresor chunk key".utf8)
        let data = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        var padded = key + [UInt8](repeating: 0, count: 64 - key.count)
        let inner = SHA256Hasher()
        inner.update(padded.map { $0 ^ 0x36 })
        inner.update(data)
        let innerDigest = inner.finalize().bytes
        padded = padded.map { $0 ^ 0x5c }
        #expect(HMACSHA256(key: key).mac(data) == SHA256.hash(padded + innerDigest))
    }

    @Test("different keys give different MACs")
    func keysMatter() {
        let data = Array("chunk".utf8)
        #expect(HMACSHA256(key: [1]).mac(data) != HMACSHA256(key: [2]).mac(data))
    }
}
