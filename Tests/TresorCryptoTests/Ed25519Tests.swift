import Testing
import TresorCore
import TresorCrypto

@Suite("Ed25519")
struct Ed25519Tests {
    // RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte, 0x72).
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String, secret: String, publicKey: String, message: String, signature: String
        var testDescription: String { name }
    }

    static let vectors = [
        Vector(
            name: "TEST 1",
            secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            message: "",
            signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        Vector(
            name: "TEST 2",
            secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            message: "72",
            signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ]

    @Test("RFC 8032 vectors: public key, signature, verification", arguments: vectors)
    func rfcVectors(vector: Vector) throws {
        let key = try Ed25519PrivateKey(rawRepresentation: hexBytes(vector.secret))
        #expect(key.rawRepresentation == hexBytes(vector.secret))
        #expect(key.publicKey.rawRepresentation == hexBytes(vector.publicKey))
        #expect(key.signature(for: hexBytes(vector.message)) == hexBytes(vector.signature))

        let publicKey = try Ed25519PublicKey(rawRepresentation: hexBytes(vector.publicKey))
        #expect(publicKey == key.publicKey)
        #expect(publicKey.isValidSignature(hexBytes(vector.signature), for: hexBytes(vector.message)))
    }

    @Test("verification rejects altered messages, signatures and keys")
    func rejects() throws {
        let v = Self.vectors[1]
        let publicKey = try Ed25519PublicKey(rawRepresentation: hexBytes(v.publicKey))
        let message = hexBytes(v.message), signature = hexBytes(v.signature)
        #expect(!publicKey.isValidSignature(signature, for: [0x73]))
        #expect(!publicKey.isValidSignature(signature, for: []))
        #expect(!publicKey.isValidSignature(signature, for: message + [0]))
        for bit in stride(from: 0, to: 512, by: 7) {
            var bad = signature
            bad[bit / 8] ^= UInt8(1) << (bit % 8)
            #expect(!publicKey.isValidSignature(bad, for: message), "bit \(bit)")
        }
        #expect(!publicKey.isValidSignature(Array(signature.dropLast()), for: message))
        #expect(!publicKey.isValidSignature(signature + [0], for: message))
        #expect(!publicKey.isValidSignature([], for: message))
        let otherKey = try Ed25519PublicKey(rawRepresentation: hexBytes(Self.vectors[0].publicKey))
        #expect(!otherKey.isValidSignature(signature, for: message))
    }

    @Test("generated keys sign and verify, deterministically, and survive a raw round trip")
    func generated() throws {
        let key = Ed25519PrivateKey()
        #expect(key.rawRepresentation.count == 32)
        #expect(key.rawRepresentation != Ed25519PrivateKey().rawRepresentation)
        let message = Array("snapshot 2026-04-01T02:00:00Z".utf8)
        let signature = key.signature(for: message)
        #expect(signature.count == 64)
        #expect(key.signature(for: message) == signature)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        let reloaded = try Ed25519PrivateKey(rawRepresentation: key.rawRepresentation)
        #expect(reloaded.publicKey == key.publicKey)
        let publicKey = try Ed25519PublicKey(rawRepresentation: key.publicKey.rawRepresentation)
        #expect(publicKey.isValidSignature(signature, for: message))
        #expect(!Ed25519PrivateKey().publicKey.isValidSignature(signature, for: message))
    }

    @Test("keys of the wrong length are rejected", arguments: [0, 31, 33, 64])
    func wrongLengths(length: Int) {
        let bytes = [UInt8](repeating: 5, count: length)
        #expect((try? Ed25519PrivateKey(rawRepresentation: bytes)) == nil)
        let error = #expect(throws: CryptoError.self) { try Ed25519PublicKey(rawRepresentation: bytes) }
        #expect(error?.code == .invalidKey)
    }

    @Test("descriptions never show the private seed")
    func noSecretInDescription() throws {
        let key = try Ed25519PrivateKey(rawRepresentation: hexBytes(Self.vectors[0].secret))
        for text in [String(describing: key), String(reflecting: key), "\(key)"] {
            #expect(!text.contains(Self.vectors[0].secret))
            #expect(text.contains(Self.vectors[0].publicKey))
        }
    }
}
