import Foundation
import TresorCore
import TresorCrypto

/// Reading and writing the evidence key files.
///
/// - private key file: 64 hex digits (the RFC 8032 32-byte seed) and a newline, mode 0600;
/// - public key file: 64 hex digits (the 32-byte RFC 8032 public key) and a newline, or the same
///   key as a PEM `PUBLIC KEY` (X.509 SubjectPublicKeyInfo, what OpenSSL and Python's
///   `cryptography` read and write). Both forms are accepted wherever a public key is read.
public enum EvidenceKeys {
    /// DER SubjectPublicKeyInfo header for an Ed25519 key (RFC 8410); the 32 key bytes follow.
    static let spkiPrefix: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]

    /// SHA-256 (hex) of the 32 raw public-key bytes: how reports and messages name a key.
    public static func fingerprint(_ key: Ed25519PublicKey) -> String {
        SHA256.hash(key.rawRepresentation).hex
    }

    /// The key as 64 hex digits.
    public static func hex(_ key: Ed25519PublicKey) -> String { Hex.encode(key.rawRepresentation) }

    /// The key as a PEM `PUBLIC KEY` block, ending with a newline.
    public static func pem(_ key: Ed25519PublicKey) -> String {
        let b64 = Data(spkiPrefix + key.rawRepresentation).base64EncodedString()
        return "-----BEGIN PUBLIC KEY-----\n\(b64)\n-----END PUBLIC KEY-----\n"
    }

    /// Parses a public key written as 64 hex digits or as a PEM `PUBLIC KEY` block.
    public static func parsePublicKey(_ text: String, source: String) throws -> Ed25519PublicKey {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var raw: [UInt8]? = nil
        if t.hasPrefix("-----BEGIN PUBLIC KEY-----") {
            let body = t.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            if let der = Data(base64Encoded: body, options: .ignoreUnknownCharacters).map(Array.init), der.count == 44, der.starts(with: spkiPrefix) {
                raw = Array(der[12...])
            }
        } else if t.utf8.count == 64 {
            raw = Hex.decode(t)
        }
        guard let raw, let key = try? Ed25519PublicKey(rawRepresentation: raw) else {
            throw EvidenceError(
                .badKey, "\(source) is not an Ed25519 public key (64 hex digits or a PEM PUBLIC KEY)",
                hint: "tresor evidence export-key > evidence.pub")
        }
        return key
    }

    public static func loadPublicKey(_ url: URL) throws -> Ed25519PublicKey {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw EvidenceError(
                .badKey, "cannot read the public key file \(url.path)",
                hint: "pass --public-key FILE, or run tresor init to create the home's evidence key")
        }
        return try parsePublicKey(text, source: url.path)
    }

    public static func loadPrivateKey(_ url: URL) throws -> Ed25519PrivateKey {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw EvidenceError(.badKey, "cannot read the evidence key \(url.path)", hint: "run tresor init to create it")
        }
        guard let raw = Hex.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32,
            let key = try? Ed25519PrivateKey(rawRepresentation: raw)
        else {
            throw EvidenceError(.badKey, "\(url.path) is not an Ed25519 private key (64 hex digits)")
        }
        return key
    }
}
