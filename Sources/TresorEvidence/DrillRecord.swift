import Foundation
import TresorCore

/// The payload of a `drill` evidence record: what one restore drill of one tenant did and found.
///
/// The tenant is the record's own `tenant` member, not part of the payload. Everything here is
/// ids, counts, durations (milliseconds), sizes (bytes), times and versions: never customer
/// content. Check reasons are Tresor's own messages and must not quote table names or data.
///
/// **A drill with a check that did not run is never a pass.** ``result`` is not stored by the
/// writer's choice: it is derived from ``checks`` (pass only when there is at least one check and
/// every check passed). Decoding a payload whose stored `result` disagrees with its checks fails,
/// so a record claiming a pass with a failed or skipped check is never counted as one.
/// Field names and meanings are listed in docs/evidence.md (*Drill records*).
public struct DrillRecord: Sendable, Equatable, Codable {
    /// What the drill restored to.
    public struct Target: Sendable, Equatable, Codable {
        public enum Kind: String, Sendable, Codable, CaseIterable {
            /// A random point in the recoverable window, chosen from ``DrillRecord/seed``.
            case random
            /// The newest recoverable point (the drill measures the RPO).
            case latest
            /// A time the operator named.
            case time
            /// A WAL position the operator named.
            case lsn
        }

        public var kind: Kind
        /// The target time (RFC 3339 UTC, milliseconds), for `random`, `latest` and `time`.
        public var time: String?
        /// The target WAL position (`X/XXXXXXXX`), for `lsn`.
        public var lsn: String?
        /// For a time target, read from the archived WAL (not the server's word): the commit time
        /// of the last transaction recovery replayed (at or before ``time``) and of the first
        /// commit after it in the archive (after ``time``), RFC 3339 UTC with microseconds.
        /// Absent when not established (the `target_reached` check then says why).
        public var replayedCommit: String?
        public var nextCommit: String?

        public init(kind: Kind, time: Date? = nil, lsn: String? = nil) {
            self.kind = kind
            self.time = time.map { TimeFormat.string($0, fractional: true) }
            self.lsn = lsn
        }
    }

    /// One check of the restored data and what came of it.
    public struct Check: Sendable, Equatable, Codable {
        public enum Status: String, Sendable, Codable {
            case passed
            /// The check ran and found a problem (``Check/reason`` says which).
            case failed
            /// The check could not run: no tool, no port, a timeout (``Check/reason`` says why).
            case notRun = "not_run"
        }

        /// The check's name, e.g. `pg_verifybackup`, `connect`, `target_reached`, `amcheck`,
        /// `read_tables`, `data_checksums`, `smoke_queries`, `documents_sample`.
        public var name: String
        public var status: Status
        /// Why it failed or did not run; nil exactly when it passed.
        public var reason: String?
        /// The check's own duration, ms (checks may overlap, so these need not add up to
        /// ``Timings/checksMs``); nil for a check that never started and in older records.
        public var ms: Int64?

        public init(name: String, status: Status, reason: String?, ms: Int64? = nil) {
            self.name = name
            self.status = status
            self.reason = reason
            self.ms = ms
        }

        public static func passed(_ name: String) -> Check { Check(name: name, status: .passed, reason: nil) }
        public static func failed(_ name: String, reason: String) -> Check { Check(name: name, status: .failed, reason: reason) }
        public static func notRun(_ name: String, reason: String) -> Check { Check(name: name, status: .notRun, reason: reason) }
    }

    public enum Result: String, Sendable, Codable {
        case pass
        case fail
    }

    /// What became of one deliberate damage in a self-test (``DrillRecord/damages``).
    public struct Damage: Sendable, Equatable, Codable {
        public enum Status: String, Sendable, Codable {
            /// At least one check of the damaged copy failed.
            case caught
            /// Every check of the damaged copy passed: the drill cannot see this damage.
            case notCaught = "not_caught"
            /// The damage could not be applied (e.g. no document to damage), so it proves nothing.
            case notRun = "not_run"
        }

        /// The damage's name, e.g. `flipped_relation_byte`, `missing_wal_segment`, `wrong_document_hash`.
        public var name: String
        public var status: Status
        /// The checks that failed on the damaged copy (empty unless caught).
        public var caughtBy: [String]
        /// Why it was not caught or not run; nil when caught.
        public var reason: String?

        public init(name: String, status: Status, caughtBy: [String], reason: String?) {
            self.name = name
            self.status = status
            self.caughtBy = caughtBy
            self.reason = reason
        }

        enum CodingKeys: String, CodingKey { case name, status, caughtBy = "caught_by", reason }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(status, forKey: .status)
            try c.encode(caughtBy, forKey: .caughtBy)
            try c.encode(reason, forKey: .reason)
        }
    }

    /// Split of the drill's wall time, milliseconds.
    public struct Timings: Sendable, Equatable, Codable {
        /// Restoring the base backup into the scratch directory.
        public var restoreMs: Int64
        /// WAL replay until the target was reached and the server promoted.
        public var recoveryMs: Int64
        /// The wall time the checks added: `pg_verifybackup` before recovery, the checks after
        /// promotion, and any wait for the document sample (restored and verified alongside the
        /// database). Each check's own duration is its ``Check/ms``.
        public var checksMs: Int64

        public init(restoreMs: Int64, recoveryMs: Int64, checksMs: Int64) {
            self.restoreMs = restoreMs
            self.recoveryMs = recoveryMs
            self.checksMs = checksMs
        }

        enum CodingKeys: String, CodingKey {
            case restoreMs = "restore_ms", recoveryMs = "recovery_ms", checksMs = "checks_ms"
        }
    }

    /// Unique per drill (e.g. a UUID), so logs of the scratch run can be tied to the record.
    public var drillID: String
    /// The seed that chose a random target; repeating the drill with it picks the same point.
    public var seed: Int64?
    public var target: Target
    /// In order of running. A drill that stopped early lists the checks it never got to as not run.
    public private(set) var checks: [Check]
    /// Time from the drill's start to a database that accepts connections at the target (the
    /// drill's RTO), ms; nil when no usable database was reached.
    public var rtoMs: Int64?
    /// For a `latest` target: the drill's start minus the newest recoverable point (the RPO), ms.
    public var rpoMs: Int64?
    public var bytesRestored: Int64
    public var filesRestored: Int64
    public var timings: Timings
    /// A self-test drill restores a deliberately damaged copy; its checks pass when the damage was
    /// caught. Self-tests never count as the tenant's restore test.
    public var selfTest: Bool
    /// For a self-test: each damage and whether the checks caught it (its `caught_<name>` check
    /// passes exactly when it was caught). Nil for a real restore test (and absent from its JSON).
    public var damages: [Damage]?
    /// For a `latest` drill of a tenant that opted in to heartbeats: the newest heartbeat in the
    /// restored database (RFC 3339 UTC, microseconds) and the data-loss bound it proves, the
    /// drill's start minus that time, ms. Absent otherwise.
    public var heartbeat: String?
    public var dataLossBoundMs: Int64?
    /// Tresor's version and the PostgreSQL server version of the scratch cluster.
    public var tresorVersion: String
    public var postgresVersion: String

    /// Pass only when there is at least one check and every check passed.
    public var result: Result {
        !checks.isEmpty && checks.allSatisfy { $0.status == .passed } ? .pass : .fail
    }

    /// Checks a record without a reason, or with a passing check carrying one, are refused: the
    /// reason is what an auditor reads when a drill did not pass.
    public init(
        drillID: String, seed: Int64?, target: Target, checks: [Check], rtoMs: Int64?, rpoMs: Int64?,
        bytesRestored: Int64, filesRestored: Int64, timings: Timings, selfTest: Bool,
        tresorVersion: String, postgresVersion: String, damages: [Damage]? = nil,
        heartbeat: String? = nil, dataLossBoundMs: Int64? = nil
    ) throws {
        self.drillID = drillID
        self.seed = seed
        self.target = target
        self.checks = checks
        self.rtoMs = rtoMs
        self.rpoMs = rpoMs
        self.bytesRestored = bytesRestored
        self.filesRestored = filesRestored
        self.timings = timings
        self.selfTest = selfTest
        self.tresorVersion = tresorVersion
        self.postgresVersion = postgresVersion
        self.damages = damages
        self.heartbeat = heartbeat
        self.dataLossBoundMs = dataLossBoundMs
        try validate()
    }

    /// The longest check reason the format carries, in UTF-8 bytes (reasons are short messages).
    public static let maxReasonBytes = 300

    func validate() throws {
        guard !drillID.isEmpty else { throw EvidenceError(.badInput, "a drill record needs a drill id") }
        for c in checks {
            guard !c.name.isEmpty else { throw EvidenceError(.badInput, "drill \(drillID): a check has no name") }
            switch c.status {
            case .passed:
                guard c.reason == nil else { throw EvidenceError(.badInput, "drill \(drillID): passed check \(c.name) carries a reason") }
            case .failed, .notRun:
                guard let r = c.reason, !r.isEmpty, r.utf8.count <= Self.maxReasonBytes else {
                    throw EvidenceError(
                        .badInput, "drill \(drillID): check \(c.name) is \(c.status.rawValue) and needs a reason of 1-\(Self.maxReasonBytes) bytes")
                }
            }
        }
        if damages != nil && !selfTest { throw EvidenceError(.badInput, "drill \(drillID): only a self-test lists damages") }
        for d in damages ?? [] {
            guard let check = checks.first(where: { $0.name == "caught_" + d.name }), (check.status == .passed) == (d.status == .caught) else {
                throw EvidenceError(.badInput, "drill \(drillID): damage \(d.name) needs a check caught_\(d.name) that passed exactly when it was caught")
            }
        }
        let figures: [(String, Int64?)] = [
            ("rto_ms", rtoMs), ("rpo_ms", rpoMs), ("data_loss_bound_ms", dataLossBoundMs), ("bytes_restored", bytesRestored),
            ("files_restored", filesRestored), ("restore_ms", timings.restoreMs), ("recovery_ms", timings.recoveryMs),
            ("checks_ms", timings.checksMs),
        ]
        for (name, v) in figures + checks.map({ ("check \($0.name) ms", $0.ms) }) {
            if let v, v < 0 { throw EvidenceError(.badInput, "drill \(drillID): \(name) is negative") }
        }
    }

    enum CodingKeys: String, CodingKey {
        case drillID = "drill_id", seed, target, checks, result, rtoMs = "rto_ms", rpoMs = "rpo_ms"
        case bytesRestored = "bytes_restored", filesRestored = "files_restored", timings, selfTest = "self_test"
        case tresorVersion = "tresor_version", postgresVersion = "postgres_version", damages
        case heartbeat, dataLossBoundMs = "data_loss_bound_ms"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            drillID: c.decode(String.self, forKey: .drillID), seed: c.decodeIfPresent(Int64.self, forKey: .seed),
            target: c.decode(Target.self, forKey: .target), checks: c.decode([Check].self, forKey: .checks),
            rtoMs: c.decodeIfPresent(Int64.self, forKey: .rtoMs), rpoMs: c.decodeIfPresent(Int64.self, forKey: .rpoMs),
            bytesRestored: c.decode(Int64.self, forKey: .bytesRestored), filesRestored: c.decode(Int64.self, forKey: .filesRestored),
            timings: c.decode(Timings.self, forKey: .timings), selfTest: c.decode(Bool.self, forKey: .selfTest),
            tresorVersion: c.decode(String.self, forKey: .tresorVersion), postgresVersion: c.decode(String.self, forKey: .postgresVersion),
            damages: c.decodeIfPresent([Damage].self, forKey: .damages),
            heartbeat: c.decodeIfPresent(String.self, forKey: .heartbeat), dataLossBoundMs: c.decodeIfPresent(Int64.self, forKey: .dataLossBoundMs))
        let stored = try c.decode(Result.self, forKey: .result)
        guard stored == result else {
            throw DecodingError.dataCorruptedError(
                forKey: .result, in: c,
                debugDescription: "result \(stored.rawValue) contradicts the checks (\(result.rawValue))")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(drillID, forKey: .drillID)
        try c.encode(seed, forKey: .seed)  // null rather than absent: every member is always there
        try c.encode(target, forKey: .target)
        try c.encode(checks, forKey: .checks)
        try c.encode(result, forKey: .result)
        try c.encode(rtoMs, forKey: .rtoMs)
        try c.encode(rpoMs, forKey: .rpoMs)
        try c.encode(bytesRestored, forKey: .bytesRestored)
        try c.encode(filesRestored, forKey: .filesRestored)
        try c.encode(timings, forKey: .timings)
        try c.encode(selfTest, forKey: .selfTest)
        try c.encode(tresorVersion, forKey: .tresorVersion)
        try c.encode(postgresVersion, forKey: .postgresVersion)
        // Only where they apply (self-tests; heartbeat tenants' latest drills): other records keep their members.
        try c.encodeIfPresent(damages, forKey: .damages)
        try c.encodeIfPresent(heartbeat, forKey: .heartbeat)
        try c.encodeIfPresent(dataLossBoundMs, forKey: .dataLossBoundMs)
    }

    /// The record as an evidence payload (what ``EvidenceLog/append(kind:tenant:payload:)`` takes).
    public func payload() throws -> [String: EvidenceValue] {
        let data = try JSONEncoder().encode(self)
        guard case .object(let o) = try JSONDecoder().decode(EvidenceValue.self, from: data) else {
            throw EvidenceError(.badInput, "a drill record did not encode as an object")
        }
        return o
    }

    /// Reads a `drill` record's payload; throws when it is not a valid drill record (including a
    /// stored pass that its checks contradict).
    public init(payload: [String: EvidenceValue]) throws {
        self = try JSONDecoder().decode(DrillRecord.self, from: JSONEncoder().encode(EvidenceValue.object(payload)))
    }
}

extension DrillRecord.Check {
    enum CodingKeys: String, CodingKey { case name, status, reason, ms }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(status, forKey: .status)
        try c.encode(reason, forKey: .reason)
        // Absent rather than null when unmeasured: older records keep their exact members.
        try c.encodeIfPresent(ms, forKey: .ms)
    }
}

extension DrillRecord.Target {
    enum CodingKeys: String, CodingKey { case kind, time, lsn, replayedCommit = "replayed_commit", nextCommit = "next_commit" }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(time, forKey: .time)
        try c.encode(lsn, forKey: .lsn)
        // Only where established: records of other targets keep their members.
        try c.encodeIfPresent(replayedCommit, forKey: .replayedCommit)
        try c.encodeIfPresent(nextCommit, forKey: .nextCommit)
    }
}
