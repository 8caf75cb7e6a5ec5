import Testing
import TresorCrypto

@Suite("HKDF-SHA-256")
struct HKDFTests {
    @Test("RFC 5869 test case 1")
    func rfcCase1() {
        let okm = HKDF.sha256(
            ikm: [UInt8](repeating: 0x0b, count: 22),
            salt: hexBytes("000102030405060708090a0b0c"),
            info: hexBytes("f0f1f2f3f4f5f6f7f8f9"), count: 42)
        #expect(okm == hexBytes("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"))
    }

    @Test("RFC 5869 test case 2 (long inputs)")
    func rfcCase2() {
        let okm = HKDF.sha256(
            ikm: (0x00...0x4f).map { UInt8($0) }, salt: (0x60...0xaf).map { UInt8($0) },
            info: (0xb0...0xff).map { UInt8($0) }, count: 82)
        #expect(
            okm
                == hexBytes(
                    "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                        + "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"))
    }

    @Test("RFC 5869 test case 3 (empty salt and info) through the String overload")
    func rfcCase3() {
        let okm = HKDF.sha256(ikm: [UInt8](repeating: 0x0b, count: 22), salt: [], info: "", count: 42)
        #expect(okm == hexBytes("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"))
    }

    @Test("a String label is used as its UTF-8 bytes (value from Python's cryptography)")
    func stringInfo() {
        let okm = HKDF.sha256(
            ikm: (0..<32).map { UInt8($0) }, salt: Array("tresor-salt".utf8),
            info: "tresor chunk-id key v1 — ü", count: 32)
        #expect(okm == hexBytes("88e9979a36024ee63a7ef54eeac5d1aa31c96d293b6f97a08c051755bf3955a9"))
    }

    @Test("empty input keying material (value from Python's cryptography)")
    func emptyIKM() {
        let okm = HKDF.sha256(ikm: [], salt: Array("salt".utf8), info: "info", count: 32)
        #expect(okm == hexBytes("7aac7b8120501c2c8e1ee50e6cde135361e99ceb9d8d406ac528b9e9175614c0"))
    }

    @Test("output lengths, and a longer output extends a shorter one")
    func lengths() {
        let ikm = [UInt8](repeating: 1, count: 32)
        #expect(HKDF.sha256(ikm: ikm, salt: [], info: "x", count: 0).isEmpty)
        let long = HKDF.sha256(ikm: ikm, salt: [], info: "x", count: 255 * 32)
        #expect(long.count == 8160)
        #expect(Array(long.prefix(33)) == HKDF.sha256(ikm: ikm, salt: [], info: "x", count: 33))
        #expect(HKDF.sha256(ikm: ikm, salt: [], info: "y", count: 32) != Array(long.prefix(32)))
    }
}
