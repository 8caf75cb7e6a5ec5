import Foundation
import TresorCore

/// The WAL half of `tresor check`: is every base backup restorable, and is the archived WAL
/// intact?
///
/// Without reading data it needs one listing: every segment from each base backup's first to its
/// last WAL file must be archived (without them the backup cannot even reach a consistent state),
/// and the segments after the oldest base backup must be contiguous on each timeline (a gap
/// makes every point after it unreachable from the backups before it). Reading data opens the
/// selected WAL objects: each must authenticate under the tenant's WAL key, decompress, and match
/// the length and keyed hash in its header.
public struct WALCheck {
    /// What the check found.
    public struct Report: Sendable, Codable, Equatable {
        public var walFiles = 0
        public var walFilesRead = 0
        public var walBytesRead: UInt64 = 0
        public var problems: [String] = []
    }

    let archive: WALArchive

    public init(archive: WALArchive) { self.archive = archive }

    /// `readFraction`: 0 reads nothing, 1 every object, in between that share chosen at random.
    public func run(backups: [BaseBackupRef], readFraction: Double) throws -> Report {
        var report = Report()
        let wal = try archive.list()
        report.walFiles = wal.count
        let segments = Set(wal.map(\.name).filter { $0.kind == .segment })
        for b in backups.sorted(by: { $0.info.startLSN < $1.info.startLSN }) {
            guard let first = WALName(b.info.startWAL), let last = WALName(b.info.endWAL) else {
                report.problems.append("base backup \(b.id.short) records wal files \(b.info.startWAL)..\(b.info.endWAL) that are not segment names")
                continue
            }
            let missing = (first.segment...max(first.segment, last.segment)).map { WALName(timeline: last.timeline, segment: $0) }
                .filter { !segments.contains($0) && !segments.contains(WALName(timeline: first.timeline, segment: $0.segment)) }
            if let m = missing.first {
                report.problems.append(
                    "base backup \(b.id.short) cannot be restored: wal segment \(m) is missing" + (missing.count > 1 ? " (and \(missing.count - 1) more)" : ""))
            }
        }
        if let oldest = backups.compactMap({ WALName($0.info.startWAL) }).min() {
            for gap in RecoveryPlanner.gaps(in: Array(segments), fromSegment: oldest.segment) {
                report.problems.append(
                    "wal gap on timeline \(gap.first.timeline): \(gap.first)..\(gap.last) missing; points after it are reachable only from later base backups")
            }
        }
        guard readFraction > 0 else { return report }
        var rng = SystemRandomNumberGenerator()
        for (name, size) in wal where readFraction >= 1 || Double.random(in: 0..<1, using: &rng) < readFraction {
            do {
                _ = try archive.fetch(name)
                report.walFilesRead += 1
                report.walBytesRead += UInt64(size)
            } catch {
                report.problems.append("wal object \(name) is damaged: \(error)")
            }
        }
        return report
    }
}
