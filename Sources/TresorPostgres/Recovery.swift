import Foundation
import TresorCore
import TresorRepository

#if canImport(Glibc)
import Glibc
#endif

/// Where a point-in-time restore should stop.
public enum RecoveryTarget: Sendable, Equatable {
    case time(Date)
    case lsn(UInt64)
    /// Replay all archived WAL.
    case latest
}

/// A base backup as the planner sees it.
public struct BaseBackupRef: Sendable, Equatable {
    public var id: ObjectID
    public var info: PostgresBackupInfo
    /// When the backup ended and its end LSN, parsed once: a manifest whose end cannot be read is
    /// refused here, never ranked (it once counted as the newest backup).
    public let endTime: Date
    public let endLSN: UInt64

    public init(id: ObjectID, info: PostgresBackupInfo) throws {
        guard let time = TimeFormat.parse(info.endTime) else {
            throw PostgresError(
                .failed, "base backup \(id.short) has an unreadable end time '\(info.endTime)'",
                hint: "tresor check --read-data; remove the snapshot with tresor repair snapshots if it is damaged")
        }
        guard let lsn = LSN.parse(info.endLSN) else {
            throw PostgresError(
                .failed, "base backup \(id.short) has an unreadable end lsn '\(info.endLSN)'",
                hint: "tresor check --read-data; remove the snapshot with tresor repair snapshots if it is damaged")
        }
        self.id = id
        self.info = info
        endTime = time
        endLSN = lsn
    }
}

/// One stored WAL object as the planner sees it (from its header).
public struct ArchivedWAL: Sendable, Equatable {
    public var name: WALName
    public var pushedAt: Date
    /// Plaintext bytes: a whole segment, or what `pg stream` received of a `.streaming` one.
    public var length: UInt64

    public init(name: WALName, pushedAt: Date, length: UInt64 = WALName.segmentSize) {
        self.name = name
        self.pushedAt = pushedAt
        self.length = length
    }
}

/// The earliest and latest points a tenant's database can be restored to.
public struct RecoveryWindow: Sendable, Codable, Equatable {
    /// The end of the oldest base backup (nothing earlier can be restored).
    public var earliestTime: String?
    public var earliestLSN: String?
    /// When the last WAL segment of the unbroken run after the newest base backup was archived,
    /// and the LSN where that segment ends; or, when `pg stream` stored part of the segment
    /// after that run, when it last did and where that part ends. Commits after the last commit
    /// in that WAL are not recoverable; a time target past the last commit makes PostgreSQL stop
    /// with an error.
    public var latestTime: String?
    public var latestLSN: String?
    public var timeline: UInt32?
    /// The `.streaming` object the latest point is in, when streaming reached past the archive.
    public var streamed: String?
    /// Missing segments between archived ones, per timeline (`first..last`).
    public var gaps: [String]
    public var baseBackups: Int
    public var walFiles: Int
}

/// Pure planning of point-in-time restores: the window, and which base backup serves a target.
public enum RecoveryPlanner {
    /// Runs of missing segments between stored ones, per timeline, in order; only segments from
    /// `fromSegment` on count (other kinds of WAL file are ignored).
    public static func gaps(in names: [WALName], fromSegment: UInt64 = 0) -> [(first: WALName, last: WALName)] {
        let segments = names.filter { $0.kind == .segment && $0.segment >= fromSegment }
        var gaps: [(first: WALName, last: WALName)] = []
        for tli in Set(segments.map(\.timeline)).sorted() {
            let nums = segments.filter { $0.timeline == tli }.map(\.segment).sorted()
            for (a, b) in zip(nums, nums.dropFirst()) where b > a + 1 {
                gaps.append((WALName(timeline: tli, segment: a + 1), WALName(timeline: tli, segment: b - 1)))
            }
        }
        return gaps
    }

    /// Computes the window from the base backups and the stored WAL.
    public static func window(backups: [BaseBackupRef], wal: [ArchivedWAL]) -> RecoveryWindow {
        let gaps = Self.gaps(in: wal.map(\.name)).map { "\($0.first)..\($0.last)" }
        var w = RecoveryWindow(gaps: gaps, baseBackups: backups.count, walFiles: wal.count)
        guard let oldest = backups.min(by: { $0.endLSN < $1.endLSN }), let newest = backups.max(by: { $0.endLSN < $1.endLSN }) else { return w }
        w.earliestTime = oldest.info.endTime
        w.earliestLSN = oldest.info.endLSN
        // Follow the newest backup's timeline from its first segment while segments are
        // contiguous, then into the streamed part of the next one.
        guard let start = WALName(newest.info.startWAL) else { return w }
        let byName = Dictionary(wal.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var latest: (lsn: UInt64, time: Date, streamed: String?)? = nil
        var s = start
        while let t = byName[s] {
            latest = (s.next.startLSN, t.pushedAt, nil)
            s = s.next
        }
        if let streamed = byName[s.with(kind: .streaming)], streamed.length > 0 {
            latest = (s.startLSN + streamed.length, streamed.pushedAt, streamed.name.description)
        }
        if let latest, latest.lsn >= newest.endLSN {
            w.latestTime = TimeFormat.string(latest.time, fractional: true)
            w.latestLSN = LSN.format(latest.lsn)
            w.timeline = s.timeline
            w.streamed = latest.streamed
        }
        return w
    }

    /// The newest base backup that ends at or before `target`, after checking the target is in
    /// the window. Errors say what the window is.
    public static func choose(target: RecoveryTarget, backups: [BaseBackupRef], window: RecoveryWindow, tenant: String) throws -> BaseBackupRef {
        guard !backups.isEmpty else {
            throw PostgresError(.usage, "tenant '\(tenant)' has no base backup", hint: "tresor pg basebackup \(tenant)")
        }
        guard let latestTimeText = window.latestTime, let latestTime = TimeFormat.parse(latestTimeText),
            let latestLSNText = window.latestLSN, let latestLSN = LSN.parse(latestLSNText)
        else {
            throw PostgresError(
                .usage, "the wal after tenant '\(tenant)''s newest base backup is not archived, so no restore is possible",
                hint: "check archive_command (tresor pg setup \(tenant)) and tresor pg window \(tenant)")
        }
        let windowText = "\(window.earliestTime ?? "?") (\(window.earliestLSN ?? "?")) .. \(latestTimeText) (\(latestLSNText))"
        switch target {
        case .latest:
            return backups.max { $0.endLSN < $1.endLSN }!
        case .time(let t):
            guard t <= latestTime else {
                throw PostgresError(
                    .usage,
                    "target time \(TimeFormat.string(t, fractional: true)) is after the latest recoverable point; the window of tenant '\(tenant)' is \(windowText)",
                    hint: "choose a time inside the window, or --latest")
            }
            guard let b = backups.filter({ $0.endTime <= t }).max(by: { $0.endTime < $1.endTime }) else {
                throw PostgresError(
                    .usage,
                    "target time \(TimeFormat.string(t, fractional: true)) is before the end of the oldest base backup; the window of tenant '\(tenant)' is \(windowText)",
                    hint: "choose a time inside the window")
            }
            return b
        case .lsn(let l):
            guard l <= latestLSN else {
                throw PostgresError(
                    .usage, "target lsn \(LSN.format(l)) is after the latest archived wal; the window of tenant '\(tenant)' is \(windowText)",
                    hint: "choose an lsn inside the window, or --latest")
            }
            guard let b = backups.filter({ $0.endLSN <= l }).max(by: { $0.endLSN < $1.endLSN }) else {
                throw PostgresError(
                    .usage, "target lsn \(LSN.format(l)) is before the end of the oldest base backup; the window of tenant '\(tenant)' is \(windowText)",
                    hint: "choose an lsn inside the window")
            }
            return b
        }
    }

    /// The settings appended to `postgresql.auto.conf` of the restored data directory.
    /// `timeline` is `latest` or a timeline number: which history to follow when timelines forked
    /// after the base backup (PostgreSQL's default, `latest`, would follow a fork made by an
    /// earlier restore rather than the history the backup was taken on).
    /// `latestRecord`: for `.latest`, the start of the last whole record of the archived WAL
    /// (``latestRecordStart(window:fetch:)``), written as `recovery_target_lsn` so a replay that
    /// falls short of it (a WAL file that could not be fetched) stops with a FATAL error instead
    /// of promoting. `archive`: false writes `archive_mode = off`, so the restored server never
    /// archives into the tenant's WAL (where its new timeline would conflict with the
    /// production cluster's).
    /// `syncfs`: writes `recovery_init_sync_method = syncfs`. A restored directory starts as a
    /// crashed server (it has a backup label), so PostgreSQL first makes the whole directory
    /// durable, by default with an open and fsync per file: seconds for a thousand files even
    /// when, as after `tresor pg restore` (which ends with `syncfs`), nothing is left to write.
    /// One `syncfs` does the same, and on Linux 5.8 and later reports write-back errors as
    /// fsync does (``syncfsReportsErrors``, the default); before that it could miss them.
    public static func recoverySettings(
        restoreCommand: String, target: RecoveryTarget, timeline: String = "latest",
        latestRecord: UInt64? = nil, archive: Bool = false,
        syncfs: Bool = syncfsReportsErrors
    ) -> String {
        var lines = [
            "", "# added by tresor pg restore", "restore_command = \(confQuoted(restoreCommand))",
            "recovery_target_timeline = '\(timeline)'",
        ]
        if syncfs {
            lines.append("recovery_init_sync_method = syncfs   # the restore synced the file system; one syncfs instead of an fsync per file")
        }
        if !archive {
            lines.append("archive_mode = off   # a restored server must not archive into the production tenant's wal (tresor pg restore --archive)")
        }
        switch target {
        case .time(let t):
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = "yyyy-MM-dd HH:mm:ss"
            let whole = t.timeIntervalSince1970.rounded(.down)
            let micros = Int(((t.timeIntervalSince1970 - whole) * 1_000_000).rounded(.down))
            let frac = String(micros + 1_000_000).dropFirst()
            lines.append("recovery_target_time = '\(f.string(from: Date(timeIntervalSince1970: whole))).\(frac)+00'")
            lines.append("recovery_target_action = 'promote'")
        case .lsn(let l):
            lines.append("recovery_target_lsn = '\(LSN.format(l))'")
            lines.append("recovery_target_action = 'promote'")
        case .latest:
            if let latestRecord {
                lines.append("recovery_target_lsn = '\(LSN.format(latestRecord))'   # the last archived record: a shorter replay fails")
                lines.append("recovery_target_action = 'promote'")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Whether this kernel reports write-back errors to `syncfs` (Linux 5.8 and later), so that
    /// PostgreSQL's `recovery_init_sync_method = syncfs` is as safe as its fsync per file.
    public static let syncfsReportsErrors: Bool = {
        var u = utsname()
        guard uname(&u) == 0 else { return false }  // unknown kernel: keep PostgreSQL's default
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return linuxRelease(release, atLeast: (5, 8))
    }()

    /// Whether a Linux release string (`uname -r`, e.g. `6.1.0-18-amd64`) is at least `version`;
    /// false when it does not start with `major.minor`.
    static func linuxRelease(_ release: String, atLeast version: (Int, Int)) -> Bool {
        let parts = release.split(separator: ".", maxSplits: 2)
        guard parts.count >= 2, let major = Int(parts[0]), let minor = Int(parts[1].prefix { $0.isNumber }) else { return false }
        return (major, minor) >= version
    }

    /// The start of the last whole WAL record up to the window's latest point on its timeline:
    /// PostgreSQL reaches a `recovery_target_lsn` only by replaying a record that starts at or
    /// after it, so the window's latest LSN itself (the end of the WAL) could never be reached.
    /// `fetch` returns a segment as `restore_command` would deliver it. Looks back at most
    /// `segments` segments (a record longer than a segment starts in none of them); nil when
    /// none holds a whole record.
    public static func latestRecordStart(window: RecoveryWindow, segments: Int = 4, fetch: (WALName) throws -> [UInt8]) throws -> UInt64? {
        guard let text = window.latestLSN, let latest = LSN.parse(text), let tli = window.timeline, latest > 0 else { return nil }
        var segment = WALName(timeline: tli, segment: (latest - 1) / WALName.segmentSize)
        for _ in 0..<segments {
            let bytes = try fetch(segment)
            let length = Int(min(latest - segment.startLSN, WALName.segmentSize))
            if let lsn = WALRecords.lastRecordStart(bytes, start: segment.startLSN, length: length) { return lsn }
            guard segment.segment > 0 else { break }
            segment = WALName(timeline: tli, segment: segment.segment - 1)
        }
        return nil
    }

    /// The first run of segments missing between a base backup's first WAL file and
    /// `through` (inclusive) on the backup's timeline; `through` may also be present as the
    /// part `pg stream` stored. Nil when every segment is there.
    public static func missingWAL(from backup: BaseBackupRef, through: WALName, wal: [ArchivedWAL]) -> (first: WALName, last: WALName)? {
        guard let first = WALName(backup.info.startWAL), through.segment >= first.segment else { return nil }
        let present = Set(wal.map(\.name))
        var run: (first: WALName, last: WALName)? = nil
        for n in first.segment...through.segment {
            let s = WALName(timeline: first.timeline, segment: n)
            let there = present.contains(s) || (n == through.segment && present.contains(s.with(kind: .streaming)))
            if !there {
                run = (run?.first ?? s, s)
            } else if run != nil {
                return run
            }
        }
        return run
    }
}
