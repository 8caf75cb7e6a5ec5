import Foundation
import TresorCore
import TresorCrypto
import TresorTestSupport

@testable import TresorEvidence

/// A log in a temp dir with a few records, and tools to damage it the way an attacker would.
final class LogFixture: @unchecked Sendable {
    let dir = TempDirectory("tresor-evidence")
    let key = Ed25519PrivateKey()
    var url: URL { dir.sub("evidence/log.jsonl") }
    var log: EvidenceLog { EvidenceLog(url: url, signer: key, clock: FixedClock(Date(timeIntervalSince1970: 1_764_500_000))) }

    init(records: Int = 5) throws {
        for i in 0..<records {
            try log.append(
                kind: i % 2 == 0 ? .drill : .control, tenant: i % 2 == 0 ? "t\(i)" : nil,
                payload: ["n": .int(Int64(i)), "result": "pass"])
        }
    }

    /// The complete lines, without newlines.
    func lines() throws -> [[UInt8]] {
        let data = try [UInt8](Data(contentsOf: url))
        return data.split(separator: 10, omittingEmptySubsequences: false).dropLast().map(Array.init)
    }

    func write(_ lines: [[UInt8]]) throws {
        try Data(lines.flatMap { $0 + [10] }).write(to: url)
    }

    func verify(with trusted: Ed25519PublicKey? = nil) throws -> EvidenceVerification {
        try EvidenceVerifier.verify(log: url, trustedKey: trusted ?? key.publicKey)
    }

    /// A correctly chained line for `seq` after `previousLine`, signed by `signer` (what an
    /// attacker holding some key can make).
    static func forge(
        seq: Int64, after previousLine: [UInt8]?, signer: Ed25519PrivateKey, kind: String = "drill",
        payload: [String: EvidenceValue] = ["result": "pass"]
    ) -> [UInt8] {
        let record = EvidenceRecord(
            version: 1, seq: seq, time: "2026-11-30T12:00:00.000Z", kind: kind, tenant: nil,
            key: Hex.encode(signer.publicKey.rawRepresentation),
            prev: previousLine.map { SHA256.hash($0).hex } ?? EvidenceLine.genesisPrev,
            payload: payload)
        return EvidenceLine.make(record: record.canonicalBytes(), signer: signer)
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}
