import Foundation
import TresorCore
import TresorPostgres
import TresorRepository

#if canImport(Glibc)
import Glibc
#endif

/// Where a self-test damages one drill's scratch copy, after the restore wrote it and before any
/// check looked at it. Only the scratch copy is ever touched: the repository, the archive and the
/// tenant's cluster stay as they are.
public struct DrillDamageSite: Sendable {
    /// The restored data directory, its recovery settings written (`postgresql.auto.conf`).
    public let pgdata: String
    /// The WAL position recovery must reach: the LSN target, or for `latest` the last archived
    /// record; nil for a time target.
    public let targetLSN: UInt64?
    /// The `restore_command` the recovery settings hold (`tresor pg wal-fetch T %f %p`).
    public let restoreCommand: String
}

/// One deliberate damage of a self-test (`tresor drill self-test`): the drill runs its usual
/// checks over a copy damaged this way, and the damage counts as caught when a check fails.
/// Production code uses it only there; a drill without a damage never calls it.
///
/// Each hook returns whether it damaged something at that point; a damage that no hook applied
/// is recorded as not run (it proves nothing), and one whose hook throws likewise, with the error.
public protocol DrillDamage: Sendable {
    /// The name in the evidence record (`caught_<name>`), lowercase with underscores.
    var name: String { get }
    /// Damages the restored data directory before `pg_verifybackup` and the server start.
    func damage(restored site: DrillDamageSite) throws -> Bool
    /// Damages what the document sample is verified against, before the verification.
    func damage(sample: inout [TreeNode]) throws -> Bool
}

extension DrillDamage {
    public func damage(restored site: DrillDamageSite) throws -> Bool { false }
    public func damage(sample: inout [TreeNode]) throws -> Bool { false }
}

/// The damages a self-test applies: the three ways a backup goes bad that a drill must notice.
public enum DrillDamages {
    public static let standard: [any DrillDamage] = [FlippedRelationByte(), MissingWALSegment(), WrongDocumentHash()]

    /// One byte inverted in the middle of the largest relation file of the restored data
    /// directory (`base/<db>/<relfilenode>`): silent corruption of a table or index.
    public struct FlippedRelationByte: DrillDamage {
        public init() {}
        public var name: String { "flipped_relation_byte" }

        public func damage(restored site: DrillDamageSite) throws -> Bool {
            let base = site.pgdata + "/base"
            var largest: (path: String, size: Int64)? = nil
            for db in try FileManager.default.contentsOfDirectory(atPath: base) where db.allSatisfy(\.isNumber) {
                for rel in try FileManager.default.contentsOfDirectory(atPath: base + "/" + db) where rel.allSatisfy(\.isNumber) {
                    let path = base + "/" + db + "/" + rel
                    var st = stat()
                    guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }  // not a plain file: not a relation to damage
                    if st.st_size > (largest?.size ?? 0) { largest = (path, Int64(st.st_size)) }
                }
            }
            guard let largest else { throw CoreError.failed("the restored data directory holds no relation file to damage") }
            let fd = open(largest.path, O_RDWR | O_NOFOLLOW)
            guard fd >= 0 else { throw CoreError.failed("cannot open a restored relation file: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            // Past the page header of a page in the middle: the tuple data, not the checksum.
            let offset = off_t((largest.size / 2 / 8192) * 8192 + 4000)
            var byte: UInt8 = 0
            guard pread(fd, &byte, 1, offset) == 1 else { throw CoreError.failed("cannot read a restored relation file") }
            byte ^= 0xFF
            guard pwrite(fd, &byte, 1, offset) == 1 else { throw CoreError.failed("cannot write a restored relation file") }
            return true
        }
    }

    /// The WAL segment that holds the target is withheld from recovery: the scratch copy's
    /// `restore_command` answers "not in the archive" for it (a later line in
    /// `postgresql.auto.conf` wins), as a lost segment would.
    public struct MissingWALSegment: DrillDamage {
        public init() {}
        public var name: String { "missing_wal_segment" }

        public func damage(restored site: DrillDamageSite) throws -> Bool {
            guard let lsn = site.targetLSN else { throw CoreError.failed("a time target names no WAL segment to withhold") }
            // The segment's log and segment part, on whatever timeline recovery asks for.
            let segment = String(WALName(timeline: 1, segment: max(lsn, 1) / WALName.segmentSize).description.suffix(16))
            let command = "case %f in *\(segment)) exit 1;; esac; \(site.restoreCommand)"
            let conf = site.pgdata + "/postgresql.auto.conf"
            let line = "\n# tresor drill self-test: wal segment \(segment) withheld\nrestore_command = \(confQuoted(command))\n"
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: conf))
            defer { try? handle.close() }  // written and synced below; a close error loses nothing more
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(line.utf8))
            try handle.synchronize()
            return true
        }
    }

    /// The first sampled document's recorded hash (its first chunk id) replaced by another: the
    /// restored bytes no longer match what the snapshot says they are.
    public struct WrongDocumentHash: DrillDamage {
        public init() {}
        public var name: String { "wrong_document_hash" }

        public func damage(sample: inout [TreeNode]) throws -> Bool {
            guard let i = sample.firstIndex(where: { !$0.chunks.isEmpty }) else {
                throw CoreError.failed("the document sample holds no file with content to damage")
            }
            sample[i].chunks[0].w0 ^= 0xFF
            return true
        }
    }
}
