import Foundation
import TresorCore
import TresorCrypto
import TresorStore

/// Copies the log's records to a store (the offsite store), one object per record, never
/// overwriting: `evidence/<anchor>/<seq, 12 digits>.json` holds the record's line and its newline,
/// where `<anchor>` is the first 16 hex digits of the fingerprint of the key that signed record 1,
/// so the logs of several installations sharing a store stay apart.
///
/// Puts use `ifAbsent`. An object that is already there must hold the same bytes: one the list
/// shows is compared by size, one a racing put created is read back and compared byte for byte. A
/// difference means one of the copies was changed, and is reported, never repaired. The torn tail of a
/// crash is not a record and is not copied. Cost: one list, then one put per new record (and a
/// get per record whose put found an object already there).
public enum EvidenceReplicator {
    public struct Report: Sendable, Codable {
        public var store: String
        public var prefix: String
        public var records: Int
        public var copied: Int
        public var alreadyPresent: Int
        /// Records whose copy in the store differs from the local line (seq numbers).
        public var conflicts: [Int64]
        public var unreadableLines: [Int]

        public var outcome: Outcome { conflicts.isEmpty && unreadableLines.isEmpty ? .ok : .problemFound }
    }

    public static func replicate(log url: URL, to store: any Store) throws -> Report {
        var report = Report(
            store: store.location, prefix: "", records: 0, copied: 0, alreadyPresent: 0, conflicts: [],
            unreadableLines: [])
        guard FileManager.default.fileExists(atPath: url.path) else { return report }
        var prefix: String? = nil
        var present: [String: Int] = [:]
        _ = try EvidenceLogReader.forEachLine(url) { line, number in
            guard case .success(let parts) = EvidenceLine.split(line),
                case .success(let r) = EvidenceLine.parseRecord(parts.record)
            else {
                report.unreadableLines.append(number)
                return true
            }
            if prefix == nil {
                let anchor = Hex.decode(r.key).map { SHA256.hash($0).hex } ?? r.key
                prefix = "evidence/\(anchor.prefix(16))/"
                report.prefix = prefix!
                for o in try store.list(prefix: prefix!) { present[o.key] = o.size }
            }
            report.records += 1
            let key = prefix! + String(format: "%012lld", r.seq) + ".json"
            let bytes = Array(line) + [10]
            if let size = present[key] {
                report.alreadyPresent += 1
                if size != bytes.count { report.conflicts.append(r.seq) }
                return true
            }
            if try store.put(key, bytes, ifAbsent: true) {
                report.copied += 1
            } else {
                report.alreadyPresent += 1
                if try store.get(key) != bytes { report.conflicts.append(r.seq) }
            }
            return true
        }
        return report
    }
}
