import Testing
import TresorCrypto

@Suite("AES-256-GCM")
struct AESGCMTests {
    static let key = (0..<32).map { UInt8($0 &* 7 &+ 1) }

    // McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13, 14 and 16 (the
    // AES-256 cases, also in NIST's GCM validation set); re-checked with Python's cryptography.
    // Our format is nonce ‖ ciphertext ‖ tag, so opening these proves interoperability.
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String, key: String, nonce: String, plaintext: String, aad: String, ciphertext: String, tag: String
        var testDescription: String { name }
    }

    static let vectors = [
        Vector(
            name: "case 13 (empty)", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
            plaintext: "", aad: "", ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        Vector(
            name: "case 14 (one zero block)", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
            plaintext: String(repeating: "00", count: 16), aad: "",
            ciphertext: "cea7403d4d606b6e074ec5d3baf39d18", tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        Vector(
            name: "case 16 (with AAD)",
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test("opens published GCM vectors", arguments: vectors)
    func knownVectors(vector: Vector) throws {
        let gcm = try AESGCM(key: hexBytes(vector.key))
        let sealed = hexBytes(vector.nonce + vector.ciphertext + vector.tag)
        #expect(try gcm.open(sealed, aad: hexBytes(vector.aad)) == hexBytes(vector.plaintext))
        // A flipped tag bit must be rejected on the same vector.
        var bad = sealed
        bad[bad.count - 1] ^= 1
        #expect(throws: CryptoError.self) { try gcm.open(bad, aad: hexBytes(vector.aad)) }
    }

    @Test("seal then open round trips, for many sizes", arguments: [0, 1, 15, 16, 17, 4096, 1 << 20, (1 << 20) + 13])
    func roundTrip(size: Int) throws {
        let gcm = try AESGCM(key: Self.key)
        let plaintext = SecureRandom.bytes(size)
        let aad = Array("pack 42".utf8)
        let sealed = gcm.seal(plaintext, aad: aad)
        #expect(sealed.count == size + AESGCM.overhead)
        if size >= 16 { #expect(Array(sealed[12..<28]) != Array(plaintext[0..<16])) }
        #expect(try gcm.open(sealed, aad: aad) == plaintext)
        // A second instance with the same key opens it too.
        #expect(try AESGCM(key: Self.key).open(sealed, aad: aad) == plaintext)
    }

    @Test("buffer API writes nonce ‖ ciphertext ‖ tag and reports lengths")
    func bufferAPI() throws {
        let gcm = try AESGCM(key: Self.key)
        let plaintext = Array("hello, tresor".utf8), aad: [UInt8] = [9, 9]
        var sealed = [UInt8](repeating: 0xee, count: plaintext.count + AESGCM.overhead + 5)
        let written = plaintext.withUnsafeBytes { p in
            aad.withUnsafeBytes { a in sealed.withUnsafeMutableBytes { gcm.seal(p, aad: a, into: $0) } }
        }
        #expect(written == plaintext.count + 28)
        #expect(sealed.suffix(5).allSatisfy { $0 == 0xee })  // nothing written past the end
        var opened = [UInt8](repeating: 0, count: plaintext.count + 3)
        let count = try sealed.withUnsafeBytes { s in
            try aad.withUnsafeBytes { a in
                try opened.withUnsafeMutableBytes { try gcm.open(UnsafeRawBufferPointer(rebasing: s[..<written]), aad: a, into: $0) }
            }
        }
        #expect(count == plaintext.count)
        #expect(Array(opened.prefix(count)) == plaintext)
    }

    @Test("sealing pieces is sealing their concatenation", arguments: [[0], [5, 0, 17], [4096, 1, 1 << 16], [0, 0]])
    func sealPieces(sizes: [Int]) throws {
        let gcm = try AESGCM(key: Self.key)
        let pieces = sizes.map { SecureRandom.bytes($0) }
        let whole = pieces.flatMap { $0 }
        let aad = Array("wal 0001".utf8)
        var sealed = [UInt8](repeating: 0, count: whole.count + AESGCM.overhead)
        let written = withPointers(pieces) { views in
            aad.withUnsafeBytes { a in sealed.withUnsafeMutableBytes { gcm.seal(pieces: views, aad: a, into: $0) } }
        }
        #expect(written == whole.count + AESGCM.overhead)
        #expect(try gcm.open(sealed, aad: aad) == whole)
    }

    /// Calls `body` with a raw view of each array, valid during the call.
    private func withPointers<R>(_ arrays: [[UInt8]], _ views: [UnsafeRawBufferPointer] = [], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        guard let first = arrays.first else { return body(views) }
        return first.withUnsafeBytes { withPointers(Array(arrays.dropFirst()), views + [$0], body) }
    }

    @Test("every seal uses a fresh nonce")
    func freshNonces() throws {
        let gcm = try AESGCM(key: Self.key)
        let plaintext = [UInt8](repeating: 0, count: 64)
        let sealed = (0..<100).map { _ in gcm.seal(plaintext) }
        #expect(Set(sealed.map { Array($0.prefix(AESGCM.nonceSize)) }).count == 100)
        #expect(Set(sealed).count == 100)
    }

    @Test("flipping any single bit of nonce, ciphertext, tag or AAD is detected")
    func tamperEveryBit() throws {
        let gcm = try AESGCM(key: Self.key)
        let plaintext = Array("chunk contents, 33 bytes long....".utf8)
        let aad = Array("pack-id!".utf8)
        let sealed = gcm.seal(plaintext, aad: aad)
        #expect(try gcm.open(sealed, aad: aad) == plaintext)

        var undetected: [Int] = []
        for bit in 0..<(sealed.count * 8) {
            var bad = sealed
            bad[bit / 8] ^= UInt8(1) << (bit % 8)
            if (try? gcm.open(bad, aad: aad)) != nil { undetected.append(bit) }
        }
        #expect(undetected.isEmpty, "sealed bits accepted after flip: \(undetected)")

        var undetectedAAD: [Int] = []
        for bit in 0..<(aad.count * 8) {
            var bad = aad
            bad[bit / 8] ^= UInt8(1) << (bit % 8)
            if (try? gcm.open(sealed, aad: bad)) != nil { undetectedAAD.append(bit) }
        }
        #expect(undetectedAAD.isEmpty, "AAD bits accepted after flip: \(undetectedAAD)")

        // The instance still works after all those failures.
        #expect(try gcm.open(sealed, aad: aad) == plaintext)
    }

    @Test("the failure is authenticationFailed, and the output buffer is wiped")
    func failureDetails() throws {
        let gcm = try AESGCM(key: Self.key)
        var sealed = gcm.seal([UInt8](repeating: 0x41, count: 100))
        sealed[50] ^= 0x80
        var out = [UInt8](repeating: 0xff, count: 100)
        let error = #expect(throws: CryptoError.self) {
            _ = try sealed.withUnsafeBytes { s in
                try out.withUnsafeMutableBytes { try gcm.open(s, aad: UnsafeRawBufferPointer(start: nil, count: 0), into: $0) }
            }
        }
        #expect(error?.code == .authenticationFailed)
        #expect(error?.kind == .failed)
        #expect(out.allSatisfy { $0 == 0 })
    }

    @Test("wrong key, missing AAD, truncation and extension are rejected")
    func wrongInputs() throws {
        let gcm = try AESGCM(key: Self.key)
        let sealed = gcm.seal(Array("secret".utf8), aad: [1])
        var otherKey = Self.key
        otherKey[0] ^= 1
        #expect(throws: CryptoError.self) { try AESGCM(key: otherKey).open(sealed, aad: [1]) }
        #expect(throws: CryptoError.self) { try gcm.open(sealed) }
        #expect(throws: CryptoError.self) { try gcm.open(sealed, aad: [1, 0]) }
        #expect(throws: CryptoError.self) { try gcm.open(Array(sealed.dropLast()), aad: [1]) }
        #expect(throws: CryptoError.self) { try gcm.open(sealed + [0], aad: [1]) }
        for length in 0..<AESGCM.overhead {
            let error = #expect(throws: CryptoError.self) { try gcm.open(Array(sealed.prefix(length)), aad: [1]) }
            #expect(error?.code == .authenticationFailed)
        }
    }

    @Test("keys that are not 32 bytes are rejected", arguments: [0, 16, 24, 31, 33, 64])
    func invalidKeys(length: Int) {
        let error = #expect(throws: CryptoError.self) { try AESGCM(key: [UInt8](repeating: 1, count: length)) }
        #expect(error?.code == .invalidKey)
    }

    @Test("one instance alternates between sealing and opening")
    func alternate() throws {
        let gcm = try AESGCM(key: Self.key)
        let other = try AESGCM(key: hexBytes(Self.vectors[2].key))
        for i in 0..<20 {
            let message = [UInt8](repeating: UInt8(i), count: i * 37)
            let sealed = gcm.seal(message, aad: [UInt8(i)])
            #expect(try gcm.open(sealed, aad: [UInt8(i)]) == message)
            // Interleave a known vector so a stale nonce or direction would show.
            let v = Self.vectors[2]
            #expect(try other.open(hexBytes(v.nonce + v.ciphertext + v.tag), aad: hexBytes(v.aad)) == hexBytes(v.plaintext))
        }
    }
}
