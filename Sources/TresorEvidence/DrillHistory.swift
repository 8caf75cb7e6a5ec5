import Foundation
import TresorCore

/// The drill and control records of a verified log, collected in one pass (feed it from
/// ``EvidenceVerifier/verify(log:trustedKey:visit:)`` so it only ever holds verified records).
///
/// A `drill` record whose payload is not a valid ``DrillRecord`` (or whose time does not parse)
/// is kept in ``invalid`` with the reason, never dropped: readers report it.
public struct DrillHistory: Sendable {
    /// One drill as recorded.
    public struct Entry: Sendable {
        public var seq: Int64
        public var time: Date
        public var tenant: String
        public var drill: DrillRecord

        /// A real restore test of the tenant that passed (self-tests never count).
        public var isPassingRestoreTest: Bool { !drill.selfTest && drill.result == .pass }
    }

    /// A `control` record (kept for the report: when the control last ran and how it came out).
    public struct ControlEntry: Sendable {
        public var seq: Int64
        public var time: Date
        public var payload: [String: EvidenceValue]
    }

    public struct Invalid: Sendable, Codable {
        public var seq: Int64
        public var reason: String
    }

    public private(set) var entries: [Entry] = []
    public private(set) var controls: [ControlEntry] = []
    public private(set) var invalid: [Invalid] = []

    public init() {}

    /// Takes the records this history cares about (`drill`, `control`); ignores other kinds.
    public mutating func add(_ record: EvidenceRecord) {
        switch record.kind {
        case EvidenceKind.drill.rawValue:
            guard let time = record.date else {
                invalid.append(Invalid(seq: record.seq, reason: "time '\(record.time)' does not parse"))
                return
            }
            guard let tenant = record.tenant else {
                invalid.append(Invalid(seq: record.seq, reason: "a drill record without a tenant"))
                return
            }
            do {
                entries.append(Entry(seq: record.seq, time: time, tenant: tenant, drill: try DrillRecord(payload: record.payload)))
            } catch {
                invalid.append(Invalid(seq: record.seq, reason: "not a valid drill record: \(Self.describe(error))"))
            }
        case EvidenceKind.control.rawValue:
            guard let time = record.date else {
                invalid.append(Invalid(seq: record.seq, reason: "time '\(record.time)' does not parse"))
                return
            }
            controls.append(ControlEntry(seq: record.seq, time: time, payload: record.payload))
        default:
            return
        }
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? EvidenceError { return e.message }
        if case DecodingError.dataCorrupted(let c) = error { return c.debugDescription }
        if case DecodingError.keyNotFound(let k, _) = error { return "\(k.stringValue) is missing" }
        if case DecodingError.typeMismatch(_, let c) = error { return "\(c.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type" }
        if case DecodingError.valueNotFound(_, let c) = error { return "\(c.codingPath.map(\.stringValue).joined(separator: ".")) is null" }
        return "\(error)"
    }
}

/// The 30-day control: for each active tenant, its last passing restore test and whether that is
/// older than the allowed age. Pure: (history, tenants, instant, age) in, statuses out.
public enum DrillControl {
    /// How one tenant stands.
    public struct TenantStatus: Sendable, Codable, Equatable {
        public enum State: String, Sendable, Codable {
            /// The last passing drill is within the allowed age.
            case ok
            /// The last passing drill is older than the allowed age.
            case overdue
            /// No drill of this tenant ever passed.
            case neverPassed = "never_passed"
        }

        public var tenant: String
        public var state: State
        /// The time and sequence number of the last passing drill at or before the instant.
        public var lastPass: Date?
        public var lastPassSeq: Int64?
        /// Whole days since the last pass (rounded down).
        public var ageDays: Int?
        /// The last drill of any result, and its result, so a failing tenant is visible early.
        public var lastDrill: Date?
        public var lastDrillResult: DrillRecord.Result?
    }

    /// Evaluates every tenant in `tenants` at `asOf`: drills after `asOf` are not considered; a
    /// tenant is overdue when its last pass is more than `maxAge` before `asOf`.
    public static func evaluate(history: DrillHistory, tenants: [String], asOf: Date, maxAge: PolicyDuration) -> [TenantStatus] {
        var lastPass: [String: DrillHistory.Entry] = [:]
        var lastAny: [String: DrillHistory.Entry] = [:]
        for e in history.entries where e.time <= asOf && !e.drill.selfTest {
            if lastAny[e.tenant].map({ $0.time <= e.time }) ?? true { lastAny[e.tenant] = e }
            if e.isPassingRestoreTest, lastPass[e.tenant].map({ $0.time <= e.time }) ?? true { lastPass[e.tenant] = e }
        }
        return tenants.map { t in
            var s = TenantStatus(tenant: t, state: .neverPassed, lastDrill: lastAny[t]?.time, lastDrillResult: lastAny[t]?.drill.result)
            if let p = lastPass[t] {
                let age = asOf.timeIntervalSince(p.time)
                s.lastPass = p.time
                s.lastPassSeq = p.seq
                s.ageDays = Int((age / 86400).rounded(.down))
                s.state = age > maxAge.seconds ? .overdue : .ok
            }
            return s
        }
    }
}
