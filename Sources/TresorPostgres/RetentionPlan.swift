import Foundation
import TresorCore
import TresorRepository

/// Everything the retention planner looks at: a pure value, so a plan is a function of it alone
/// (and golden files can hold it). Built by the engine from the repository's snapshot list, the
/// store's WAL listing, the policy and the clock.
///
/// Lives here rather than in TresorCore because it reads WAL names (``WALName``) and base-backup
/// positions (``PostgresBackupInfo``), which this module owns.
public struct RetentionInput: Codable, Sendable, Equatable {
    public struct Snapshot: Codable, Sendable, Equatable {
        public var id: String
        /// A manifest of a kind this build does not know cannot be read at all (see
        /// ``SnapshotKind``), so every snapshot here has a retention rule.
        public var kind: SnapshotKind
        public var time: String
        public var postgres: PostgresBackupInfo?

        public init(id: String, kind: SnapshotKind, time: String, postgres: PostgresBackupInfo? = nil) {
            self.id = id
            self.kind = kind
            self.time = time
            self.postgres = postgres
        }
    }

    public struct WALObject: Codable, Sendable, Equatable {
        /// The file name (`000000010000000000000003`, `00000002.history`, `….streaming`).
        public var name: String
        public var size: Int

        public init(name: String, size: Int) {
            self.name = name
            self.size = size
        }
    }

    public var now: String
    /// `postgres.recovery_window`, in seconds.
    public var recoveryWindowSeconds: Double
    /// `documents.daily_snapshots_kept`.
    public var dailySnapshotsKept: Int
    public var snapshots: [Snapshot]
    public var wal: [WALObject]
    /// Snapshot ids a drill or an export is reading right now (``SnapshotPins`` in the engine).
    public var inUse: [String]
    /// `retention.timezone`: the IANA zone whose local dates are the days (absent: UTC).
    public var timeZone: String?

    public init(
        now: String, recoveryWindowSeconds: Double, dailySnapshotsKept: Int, snapshots: [Snapshot],
        wal: [WALObject], inUse: [String], timeZone: String? = nil
    ) {
        self.timeZone = timeZone
        self.now = now
        self.recoveryWindowSeconds = recoveryWindowSeconds
        self.dailySnapshotsKept = dailySnapshotsKept
        self.snapshots = snapshots
        self.wal = wal
        self.inUse = inUse
    }
}

/// What retention keeps and drops, each with its reason. Packs are not in it: which packs go
/// follows from the kept snapshots (the pruner works that out from the index).
public struct RetentionPlan: Codable, Sendable, Equatable {
    public struct Decision: Codable, Sendable, Equatable {
        /// A snapshot id or a WAL file name.
        public var item: String
        public var reason: String
    }

    public var now: String
    public var windowStart: String
    /// The zone the days were counted in, when not UTC.
    public var timeZone: String?
    public var keepSnapshots: [Decision] = []
    public var dropSnapshots: [Decision] = []
    public var keepWAL: [Decision] = []
    public var dropWAL: [Decision] = []
    public var walBytesToFree: Int = 0
    /// Things wrong with what is stored (a WAL gap, a window no base backup covers): retention
    /// still runs, never deletes to compensate, and the run exits 3.
    public var problems: [String] = []

    public init(now: String, windowStart: String) {
        self.now = now
        self.windowStart = windowStart
    }
}

public enum RetentionPlanner {
    public static func plan(_ input: RetentionInput) throws -> RetentionPlan {
        guard let now = TimeFormat.parse(input.now) else {
            throw CoreError.usage("retention: cannot read the time \(input.now)")
        }
        let calendar = try RetentionCalendar(zone: input.timeZone)
        let windowStart = calendar.windowStart(now: now, seconds: input.recoveryWindowSeconds)
        var plan = RetentionPlan(now: TimeFormat.string(now), windowStart: TimeFormat.string(windowStart))
        plan.timeZone = input.timeZone
        let inUse = Set(input.inUse)

        var documents: [(snapshot: RetentionInput.Snapshot, time: Date)] = []
        var bases: [(snapshot: RetentionInput.Snapshot, info: PostgresBackupInfo, end: Date)] = []
        for s in input.snapshots {
            guard let time = TimeFormat.parse(s.time) else {
                plan.keepSnapshots.append(.init(item: s.id, reason: "kept: its time \(s.time) cannot be read"))
                plan.problems.append("snapshot \(s.id): its time \(s.time) cannot be read")
                continue
            }
            switch s.kind {
            case .documents:
                documents.append((s, time))
            case .postgresBase:
                guard let info = s.postgres, let end = TimeFormat.parse(info.endTime) else {
                    plan.keepSnapshots.append(.init(item: s.id, reason: "kept: base backup without a readable end"))
                    plan.problems.append("snapshot \(s.id): base backup without a readable end position or time")
                    continue
                }
                bases.append((s, info, end))
            }
        }
        planDocuments(documents, now: now, days: input.dailySnapshotsKept, calendar: calendar, inUse: inUse, into: &plan)
        planPostgres(bases, wal: input.wal, windowStart: windowStart, inUse: inUse, into: &plan)
        plan.keepSnapshots.sort { $0.item < $1.item }
        plan.dropSnapshots.sort { $0.item < $1.item }
        return plan
    }

    /// The last snapshot of each of the newest `days` local days (in the policy's zone) that have
    /// one (days without a snapshot are not counted, so a pause in backups never ages the history away).
    static func planDocuments(
        _ docs: [(snapshot: RetentionInput.Snapshot, time: Date)], now: Date, days: Int,
        calendar: RetentionCalendar, inUse: Set<String>, into plan: inout RetentionPlan
    ) {
        var byDay: [Int: [(snapshot: RetentionInput.Snapshot, time: Date)]] = [:]
        for d in docs {
            if d.time > now {
                plan.keepSnapshots.append(.init(item: d.snapshot.id, reason: "kept: dated after now"))
                continue
            }
            byDay[calendar.day(of: d.time), default: []].append(d)
        }
        let keptDays = Set(byDay.keys.sorted(by: >).prefix(days))
        for (day, list) in byDay {
            let sorted = list.sorted { ($0.time, $0.snapshot.id) < ($1.time, $1.snapshot.id) }
            let dayText = RetentionCalendar.text(day: day)
            for (i, d) in sorted.enumerated() {
                let last = i == sorted.count - 1
                if keptDays.contains(day) && last {
                    plan.keepSnapshots.append(.init(item: d.snapshot.id, reason: "kept: last of \(dayText)"))
                } else if inUse.contains(d.snapshot.id) {
                    plan.keepSnapshots.append(.init(item: d.snapshot.id, reason: "kept: in use"))
                } else if keptDays.contains(day) {
                    plan.dropSnapshots.append(.init(item: d.snapshot.id, reason: "not the last of \(dayText)"))
                } else {
                    plan.dropSnapshots.append(.init(item: d.snapshot.id, reason: "\(dayText) is older than the \(days) daily snapshots kept"))
                }
            }
        }
    }

    /// The newest base backup that ends at or before the window's start (a moment inside a backup
    /// is not restorable from it), every later one, and the WAL from the oldest kept one's start on.
    static func planPostgres(
        _ unsorted: [(snapshot: RetentionInput.Snapshot, info: PostgresBackupInfo, end: Date)],
        wal: [RetentionInput.WALObject], windowStart: Date, inUse: Set<String>,
        into plan: inout RetentionPlan
    ) {
        let bases = unsorted.sorted { ($0.end, $0.snapshot.id) < ($1.end, $1.snapshot.id) }
        var anchorIndex: Int
        if let i = bases.lastIndex(where: { $0.end <= windowStart }) {
            anchorIndex = i
        } else {
            anchorIndex = 0
            if let first = bases.first {
                plan.problems.append(
                    "no base backup ends at or before the window's start \(plan.windowStart); the oldest, \(first.snapshot.id), reaches back only to \(first.info.endTime)"
                )
            }
        }
        var minTimeline = UInt32.max
        var start: WALName?
        for (i, b) in bases.enumerated() {
            if i >= anchorIndex {
                let why =
                    i == anchorIndex && b.end <= windowStart
                    ? "kept: newest base backup at or before the window's start"
                    : "kept: base backup inside the window"
                plan.keepSnapshots.append(.init(item: b.snapshot.id, reason: why))
                minTimeline = min(minTimeline, b.info.timeline)
                if let s = WALName(b.info.startWAL) {
                    if start == nil || s.segment < start!.segment { start = s }
                } else {
                    plan.problems.append("base backup \(b.snapshot.id): start WAL \(b.info.startWAL) is not a WAL name")
                }
            } else if inUse.contains(b.snapshot.id) {
                // A drill or an export is restoring it: it and the WAL from its start stay.
                plan.keepSnapshots.append(.init(item: b.snapshot.id, reason: "kept: in use"))
                minTimeline = min(minTimeline, b.info.timeline)
                if let s = WALName(b.info.startWAL), start == nil || s.segment < start!.segment { start = s }
            } else {
                plan.dropSnapshots.append(.init(item: b.snapshot.id, reason: "superseded: ends before the base backup the window starts from"))
            }
        }
        guard let start, !bases.isEmpty else {
            // Without a readable kept base backup nothing proves which WAL is unneeded.
            for w in wal { plan.keepWAL.append(.init(item: w.name, reason: "kept: no base backup to start from")) }
            plan.keepWAL.sort { $0.item < $1.item }
            return
        }

        let names = wal.compactMap { WALName($0.name) }
        let complete = Set(names.filter { $0.kind == .segment }.map { ($0.timeline, $0.segment) }.map { "\($0.0)/\($0.1)" })
        var kept: [UInt32: [UInt64]] = [:]
        for w in wal {
            guard let n = WALName(w.name) else {
                plan.keepWAL.append(.init(item: w.name, reason: "kept: not a WAL file name"))
                continue
            }
            var drop: String?
            if n.kind == .history {
                if n.timeline < minTimeline { drop = "timeline \(n.timeline) is older than every kept base backup" }
            } else if n.timeline < minTimeline {
                drop = "timeline \(n.timeline) is older than every kept base backup"
            } else if n.segment < start.segment {
                drop = "before the oldest kept base backup's start \(start)"
            } else if n.kind == .streaming && complete.contains("\(n.timeline)/\(n.segment)") {
                drop = "its segment is complete"
            }
            if let drop {
                plan.dropWAL.append(.init(item: w.name, reason: drop))
                plan.walBytesToFree += w.size
            } else {
                plan.keepWAL.append(.init(item: w.name, reason: "kept"))
                switch n.kind {
                case .segment, .partial, .streaming: kept[n.timeline, default: []].append(n.segment)
                default: break
                }
            }
        }
        // Gaps in what is kept: moments after one are not restorable from the backups before it.
        for (timeline, segments) in kept.sorted(by: { $0.key < $1.key }) {
            let sorted = Array(Set(segments)).sorted()
            var expected = timeline == start.timeline ? start.segment : sorted[0]
            for s in sorted {
                if s > expected {
                    plan.problems.append(
                        "WAL gap on timeline \(timeline): \(WALName(timeline: timeline, segment: expected))…\(WALName(timeline: timeline, segment: s - 1)) missing"
                    )
                }
                expected = max(expected, s + 1)
            }
        }
        plan.keepWAL.sort { $0.item < $1.item }
        plan.dropWAL.sort { $0.item < $1.item }
    }
}

/// Calendar days in the policy's time zone, for the planner. A day is the local date
/// (`yyyymmdd` as a number, so days sort), however many hours it has there.
struct RetentionCalendar {
    let calendar: Calendar

    init(zone: String?) throws {
        guard let tz = TimeZone(identifier: zone ?? "UTC") else {
            throw CoreError.usage("retention: \(zone ?? "") is not a time zone name")
        }
        var c = Calendar(identifier: .gregorian)
        c.timeZone = tz
        calendar = c
    }

    func day(of time: Date) -> Int {
        let c = calendar.dateComponents([.year, .month, .day], from: time)
        return (c.year ?? 0) * 10_000 + (c.month ?? 0) * 100 + (c.day ?? 0)
    }

    static func text(day: Int) -> String {
        let y = String(day / 10_000), m = String(day / 100 % 100), d = String(day % 100)
        return String(repeating: "0", count: max(0, 4 - y.count)) + y + "-" + (m.count < 2 ? "0" : "") + m
            + "-" + (d.count < 2 ? "0" : "") + d
    }

    /// `seconds` back from `now`; for a whole number of days, the same local wall-clock time that
    /// many calendar days back when that is earlier (a window across a change back from summer
    /// time is an hour longer than its days × 24 h), so the window is never shorter than promised
    /// in either reading of "N days".
    func windowStart(now: Date, seconds: Double) -> Date {
        let elapsed = now.addingTimeInterval(-seconds)
        guard seconds.truncatingRemainder(dividingBy: 86_400) == 0,
            let local = calendar.date(byAdding: .day, value: -Int(seconds / 86_400), to: now)
        else { return elapsed }
        return min(elapsed, local)
    }
}
