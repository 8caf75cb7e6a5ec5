import Foundation
import TresorCore

/// Records of a log selected by tenant, kind and time, for `tresor evidence list`. Reading is
/// not verifying: lines that cannot be read are counted and named, never skipped silently.
public struct EvidenceListing: Sendable, Codable {
    public struct Entry: Sendable, Codable {
        public var seq: Int64
        public var time: String
        public var kind: String
        public var tenant: String?
        public var payload: [String: EvidenceValue]
        /// SHA-256 of the record's line.
        public var hash: String
    }

    public var log: String
    public var entries: [Entry]
    /// Line numbers that are not readable records (run `evidence verify`).
    public var unreadableLines: [Int]
    public var tornTailBytes: Int

    public var outcome: Outcome { unreadableLines.isEmpty && tornTailBytes == 0 ? .ok : .problemFound }

    /// Reads `log` (an absent log lists nothing) and keeps the records that match every filter
    /// given: `since` keeps records whose time is at or after it.
    public static func read(log url: URL, tenant: String? = nil, kind: String? = nil, since: Date? = nil) throws -> EvidenceListing {
        var out = EvidenceListing(log: url.path, entries: [], unreadableLines: [], tornTailBytes: 0)
        guard FileManager.default.fileExists(atPath: url.path) else { return out }
        out.tornTailBytes = try EvidenceLogReader.forEachLine(url) { line, number in
            guard case .success(let parts) = EvidenceLine.split(line),
                case .success(let r) = EvidenceLine.parseRecord(parts.record)
            else {
                out.unreadableLines.append(number)
                return true
            }
            if let tenant, r.tenant != tenant { return true }
            if let kind, r.kind != kind { return true }
            if let since {
                guard let d = r.date else {
                    out.unreadableLines.append(number)
                    return true
                }
                if d < since { return true }
            }
            out.entries.append(
                Entry(
                    seq: r.seq, time: r.time, kind: r.kind, tenant: r.tenant, payload: r.payload,
                    hash: EvidenceLine.hash(line)))
            return true
        }
        return out
    }
}
