import Foundation
import TresorCore
import TresorCrypto

/// What an evidence record attests.
public enum EvidenceKind: String, Sendable, CaseIterable, Codable {
    /// A restore drill and its results.
    case drill
    /// A control check (e.g. no tenant's last passing drill is older than 30 days).
    case control
    /// A tenant's data was deleted (the deletion certificate).
    case deletion
    /// A sweep for residual copies of deleted tenants.
    case sweep
    /// An exit export handed to a customer.
    case export
    /// A recorded approval to keep a tenant's data outside its region.
    case regionApproval = "region-approval"
    /// The evidence key was replaced: signed by the old key, naming the new one (`new_key`).
    case keyRotation = "key-rotation"
    /// An append found a torn final line left by a crash and set it aside.
    case logRepair = "log-repair"
    /// A customer's documents were read out of a snapshot (`docs dump`, `docs restore --path`).
    case documentAccess = "document-access"
    /// A retention run: what it kept and deleted per class, in which stores.
    case retention
}

/// One record of the evidence log, as read back from it.
///
/// The signed and hashed forms are bytes, not this value: see ``EvidenceLine``.
public struct EvidenceRecord: Sendable, Equatable, Codable {
    /// The format version; 1.
    public var version: Int
    /// 1 for the first record, then +1 per record, with no gaps.
    public var seq: Int64
    /// When the record was appended, from the installation's clock (RFC 3339, UTC, milliseconds).
    public var time: String
    /// An ``EvidenceKind`` raw value (kept as text so a reader knows records newer kinds wrote).
    public var kind: String
    /// The tenant the record speaks about, or nil for installation-wide records.
    public var tenant: String?
    /// The signer's Ed25519 public key, 64 hex digits: a claim for messages, never trusted.
    public var key: String
    /// SHA-256 (hex) of the previous record's line; 64 zeros for the first record.
    public var prev: String
    public var payload: [String: EvidenceValue]

    enum CodingKeys: String, CodingKey {
        case version = "v", seq, time, kind, tenant, key, prev, payload
    }

    /// The date of ``time``, if it parses.
    public var date: Date? { TimeFormat.parse(time) }

    /// The record's bytes as signed and stored (`R` in docs/evidence.md): members in the order
    /// v, seq, time, kind, tenant, key, prev, payload; no whitespace.
    func canonicalBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        EvidenceJSON.object(
            [
                ("v", .int(Int64(version))), ("seq", .int(seq)), ("time", .string(time)), ("kind", .string(kind)),
                ("tenant", tenant.map(EvidenceValue.string) ?? .null), ("key", .string(key)), ("prev", .string(prev)),
                ("payload", .object(payload)),
            ], into: &out)
        return out
    }
}

/// The exact bytes of one line of the log and what is hashed and signed (docs/evidence.md):
///
/// ```
/// line    = {"sig":"<128 hex digits>","record":R}        followed by one \n (0x0A)
/// signed  = "tresor-evidence-v1" 0x0A R                   (Ed25519, RFC 8032 PureEdDSA)
/// hash    = SHA-256(line without its \n)                  the next record's "prev"
/// ```
public enum EvidenceLine {
    static let prefix = Array("{\"sig\":\"".utf8)
    static let middle = Array("\",\"record\":".utf8)
    /// Bytes before R: the prefix, 128 hex digits, the middle.
    static let recordOffset = prefix.count + 128 + middle.count
    static let domain = Array("tresor-evidence-v1\n".utf8)
    /// The `prev` of the first record.
    public static let genesisPrev = String(repeating: "0", count: 64)

    /// The message the signature covers.
    static func signedMessage<C: Collection>(_ record: C) -> [UInt8] where C.Element == UInt8 {
        domain + record
    }

    /// A signed line, without the trailing newline.
    static func make(record: [UInt8], signer: Ed25519PrivateKey) -> [UInt8] {
        let sig = signer.signature(for: signedMessage(record))
        return prefix + Array(Hex.encode(sig).utf8) + middle + record + [UInt8(ascii: "}")]
    }

    /// The parts of a line: the signature and R's bytes, or why the line is not a record line.
    static func split(_ line: ArraySlice<UInt8>) -> Result<(sig: [UInt8], record: ArraySlice<UInt8>), LineProblem> {
        let b = line.startIndex
        guard line.count > recordOffset + 1, line.starts(with: prefix),
            line[(b + prefix.count + 128)..<(b + recordOffset)].elementsEqual(middle),
            line.last == UInt8(ascii: "}")
        else {
            return .failure(.malformed("not a record line ({\"sig\":\"…\",\"record\":{…}})"))
        }
        let hexDigits = line[(b + prefix.count)..<(b + prefix.count + 128)]
        guard hexDigits.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
            let sig = Hex.decode(String(decoding: hexDigits, as: UTF8.self))
        else {
            return .failure(.malformed("the signature is not 128 lowercase hex digits"))
        }
        return .success((sig, line[(b + recordOffset)..<(line.endIndex - 1)]))
    }

    /// Parses R. Checks field shapes (the rules in docs/evidence.md), not signatures or links.
    static func parseRecord(_ bytes: ArraySlice<UInt8>) -> Result<EvidenceRecord, LineProblem> {
        let record: EvidenceRecord
        do {
            record = try JSONDecoder().decode(EvidenceRecord.self, from: Data(bytes))
        } catch {
            return .failure(.malformed("the record is not valid evidence JSON"))
        }
        guard record.version == 1 else { return .failure(.malformed("unknown format version \(record.version)")) }
        guard isHex64(record.key), isHex64(record.prev) else {
            return .failure(.malformed("key and prev must be 64 lowercase hex digits"))
        }
        if record.kind == EvidenceKind.keyRotation.rawValue {
            guard let k = record.payload["new_key"]?.stringValue, isHex64(k) else {
                return .failure(.malformed("a key-rotation record needs payload.new_key (64 hex digits)"))
            }
        }
        return .success(record)
    }

    static func isHex64(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The hash that the next record's `prev` must carry.
    static func hash<C: Collection>(_ line: C) -> String where C.Element == UInt8 {
        SHA256.hash(Array(line)).hex
    }

    enum LineProblem: Error {
        case malformed(String)
        var reason: String {
            switch self {
            case .malformed(let r): return r
            }
        }
    }
}
