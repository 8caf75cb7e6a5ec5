import Foundation
import TresorCore
import TresorCrypto

/// The result of checking a whole log against one trusted public key.
public struct EvidenceVerification: Sendable, Codable {
    /// A record that failed, and why. Everything after it is unverified.
    public struct BadRecord: Sendable, Codable {
        /// 1-based line number in the file.
        public var line: Int
        /// The sequence number the line claims, when it could be read.
        public var seq: Int64?
        public var reason: String
    }

    public var log: String
    /// Fingerprint of the key verification started from (the trust anchor given by the caller).
    public var trustedKeyFingerprint: String
    /// Records that verified, in order, before any bad one.
    public var verifiedRecords: Int
    /// The last verified record's sequence number and line hash: compare with an earlier
    /// verification or the offsite copy to notice records cut from the end.
    public var headSeq: Int64?
    public var headHash: String?
    /// Every key the chain used, the trusted one first, then each rotation's new key (hex).
    public var keys: [String]
    public var firstBad: BadRecord?
    /// Bytes after the last newline: a torn final write (a crash during an append).
    public var tornTailBytes: Int

    /// No bad record and no torn tail (stored, so `--json` output carries it).
    public private(set) var intact = true

    init(log: String, trustedKeyFingerprint: String, keys: [String]) {
        self.log = log
        self.trustedKeyFingerprint = trustedKeyFingerprint
        self.verifiedRecords = 0
        self.keys = keys
        self.tornTailBytes = 0
    }

    mutating func finish() { intact = firstBad == nil && tornTailBytes == 0 }
    public var outcome: Outcome { intact ? .ok : .problemFound }
}

/// Checks a log's chain and every signature, trusting only the public key it is given.
///
/// Rules (docs/evidence.md): line i must be a record line whose R parses, whose signature verifies
/// under the current trusted key, whose `seq` is i, and whose `prev` is the SHA-256 of line i-1
/// (64 zeros for line 1). A `key-rotation` record, itself signed by the current key, makes its
/// `new_key` the trusted key from the next record on. The `key` member inside records is only
/// used to say who signed a record that failed; it never decides anything.
public enum EvidenceVerifier {
    /// A missing log has no records and verifies (a home that never recorded evidence); callers
    /// that were given a log path check that it exists.
    public static func verify(log url: URL, trustedKey: Ed25519PublicKey) throws -> EvidenceVerification {
        try verify(log: url, trustedKey: trustedKey, visit: { _, _ in })
    }

    /// Verifies as above and calls `visit` with each record that verified (and its line hash), in
    /// order, as it goes: readers that must trust what they read (the drill control, the report)
    /// see only records of the verified prefix, in one pass over the file.
    public static func verify(
        log url: URL, trustedKey: Ed25519PublicKey,
        visit: (EvidenceRecord, String) throws -> Void
    ) throws -> EvidenceVerification {
        var result = EvidenceVerification(
            log: url.path, trustedKeyFingerprint: EvidenceKeys.fingerprint(trustedKey),
            keys: [EvidenceKeys.hex(trustedKey)])
        guard FileManager.default.fileExists(atPath: url.path) else { return result }
        var current = trustedKey
        var prev = EvidenceLine.genesisPrev
        var expectedSeq: Int64 = 1
        let torn = try EvidenceLogReader.forEachLine(url) { line, number in
            func bad(_ seq: Int64?, _ reason: String) -> Bool {
                result.firstBad = .init(line: number, seq: seq, reason: reason)
                return false
            }
            let parts: (sig: [UInt8], record: ArraySlice<UInt8>)
            switch EvidenceLine.split(line) {
            case .failure(let p): return bad(nil, p.reason)
            case .success(let s): parts = s
            }
            let record: EvidenceRecord
            switch EvidenceLine.parseRecord(parts.record) {
            case .failure(let p): return bad(nil, p.reason)
            case .success(let r): record = r
            }
            guard current.isValidSignature(parts.sig, for: EvidenceLine.signedMessage(parts.record)) else {
                let currentHex = EvidenceKeys.hex(current)
                return bad(
                    record.seq,
                    record.key == currentHex
                        ? "the signature does not verify: the record was changed after it was signed"
                        : "not signed by the trusted key \(currentHex.prefix(16))… (the record names key \(record.key.prefix(16))…)")
            }
            guard record.seq == expectedSeq else {
                return bad(
                    record.seq,
                    record.seq > expectedSeq
                        ? "sequence \(record.seq) where \(expectedSeq) was expected: records are missing or out of order"
                        : "sequence \(record.seq) where \(expectedSeq) was expected: a record was repeated, moved or inserted")
            }
            guard record.prev == prev else {
                return bad(record.seq, "prev does not match the hash of the record before it: a record was removed, changed, moved or inserted")
            }
            prev = EvidenceLine.hash(line)
            expectedSeq += 1
            result.verifiedRecords += 1
            result.headSeq = record.seq
            result.headHash = prev
            if record.kind == EvidenceKind.keyRotation.rawValue, let hex = record.payload["new_key"]?.stringValue {
                guard let raw = Hex.decode(hex), let next = try? Ed25519PublicKey(rawRepresentation: raw) else {
                    return bad(record.seq, "the key-rotation record names a key that is not an Ed25519 public key")
                }
                current = next
                result.keys.append(hex)
            }
            try visit(record, prev)
            return true
        }
        result.tornTailBytes = result.firstBad == nil ? torn : 0
        result.finish()
        return result
    }
}
