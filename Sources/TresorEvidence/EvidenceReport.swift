import Foundation
import TresorCore

/// The auditors' monthly report: what the verified evidence log says about restore drills, the
/// 30-day control and the promised restore figures, as values ready to render
/// (``EvidenceReportPage`` turns them into one self-contained HTML page).
///
/// Only records of the verified prefix are used (``DrillHistory`` fed by the verifier); when the
/// log does not verify to its end the report says so at the top and ``outcome`` is a problem.
/// Figures are computed from real restore tests only: self-test drills (deliberately damaged
/// copies) are listed nowhere in the figures.
public struct EvidenceReport: Sendable {
    /// A calendar month in UTC.
    public struct Month: Sendable, Equatable, Comparable {
        public var year: Int
        public var month: Int

        public init(year: Int, month: Int) {
            self.year = year
            self.month = month
        }

        /// Parses `2026-11`.
        public init?(_ text: String) {
            let parts = text.split(separator: "-")
            guard parts.count == 2, parts[0].count == 4, parts[1].count == 2,
                let y = Int(parts[0]), let m = Int(parts[1]), (1...12).contains(m), y >= 1970
            else { return nil }
            self.init(year: y, month: m)
        }

        public init(containing date: Date) {
            let c = Self.calendar.dateComponents([.year, .month], from: date)
            self.init(year: c.year!, month: c.month!)
        }

        static let calendar: Calendar = {
            var c = Calendar(identifier: .gregorian)
            c.timeZone = TimeZone(identifier: "UTC")!
            return c
        }()

        public var start: Date { Self.calendar.date(from: DateComponents(year: year, month: month, day: 1))! }
        /// The first instant of the next month.
        public var end: Date { adding(1).start }

        public func adding(_ months: Int) -> Month {
            let index = year * 12 + (month - 1) + months
            return Month(year: index / 12, month: index % 12 + 1)
        }

        public var text: String { String(format: "%04d-%02d", year, month) }
        public var name: String { "\(Self.names[month - 1]) \(year)" }
        public var shortName: String { String(Self.names[month - 1].prefix(3)) }
        static let names = [
            "January", "February", "March", "April", "May", "June", "July", "August", "September",
            "October", "November", "December",
        ]

        public static func < (a: Month, b: Month) -> Bool { (a.year, a.month) < (b.year, b.month) }

        func contains(_ date: Date) -> Bool { date >= start && date < end }
    }

    /// The promised figures, from the policy's `[service_terms]` and `drills.max_age`.
    public struct Promises: Sendable {
        public var rto: PolicyDuration
        public var rtoTypical: PolicyDuration
        public var rtoTypicalSharePercent: Int
        public var rpo: PolicyDuration
        public var maxAge: PolicyDuration

        public init(
            rto: PolicyDuration, rtoTypical: PolicyDuration, rtoTypicalSharePercent: Int, rpo: PolicyDuration,
            maxAge: PolicyDuration
        ) {
            self.rto = rto
            self.rtoTypical = rtoTypical
            self.rtoTypicalSharePercent = rtoTypicalSharePercent
            self.rpo = rpo
            self.maxAge = maxAge
        }
    }

    /// The month's figures over real restore tests (self-tests excluded).
    public struct Figures: Sendable, Codable {
        public var drills = 0
        public var passed = 0
        public var failed = 0
        /// Drills that reached a usable database (they have an RTO).
        public var restores = 0
        public var rtoMaxMs: Int64?
        public var rtoMedianMs: Int64?
        /// Restores slower than the promised RTO, plus drills that reached no usable database.
        public var rtoBreaches = 0
        /// Drills within the typical RTO, over all drills (one that reached no database is not
        /// within it).
        public var withinTypical = 0
        public var latestTargetDrills = 0
        public var rpoMaxMs: Int64?
        public var rpoBreaches = 0

        /// Percent of drills within the typical RTO, nil without drills.
        public var withinTypicalPercent: Double? { drills == 0 ? nil : Double(withinTypical) * 100 / Double(drills) }
    }

    public var month: Month
    public var generatedAt: Date
    /// The instant the control and overdue flags are evaluated at: the end of ``month`` or now,
    /// whichever is earlier.
    public var asOf: Date
    public var promises: Promises
    public var verification: EvidenceVerification
    /// The anchor public key's fingerprint (what the log was verified with).
    public var keyFingerprint: String
    public var history: DrillHistory
    /// Active tenants (evaluated by the control) first, then tenants only the log knows.
    public var activeTenants: [String]
    public var statuses: [DrillControl.TenantStatus]
    public var figures: Figures
    /// Real restore tests in the 12 shown months up to ``asOf``, by tenant (oldest first), so the
    /// page's cells cost one pass over the log's drills rather than one per tenant and month.
    let shownDrills: [String: [DrillHistory.Entry]]

    public init(
        month: Month, now: Date, activeTenants: [String], verification: EvidenceVerification,
        history: DrillHistory, promises: Promises
    ) {
        self.month = month
        self.generatedAt = now
        let asOf = min(now, month.end.addingTimeInterval(-0.001))
        self.asOf = asOf
        self.promises = promises
        self.verification = verification
        self.keyFingerprint = verification.trustedKeyFingerprint
        self.history = history
        self.activeTenants = activeTenants
        self.statuses = DrillControl.evaluate(history: history, tenants: activeTenants, asOf: asOf, maxAge: promises.maxAge)
        let inMonth = history.entries.filter { month.contains($0.time) && $0.time <= asOf && !$0.drill.selfTest }
        let first = month.adding(-11).start
        self.shownDrills = Dictionary(
            grouping: history.entries.filter { $0.time >= first && $0.time <= asOf && !$0.drill.selfTest },
            by: \.tenant)
        self.figures = Self.figures(
            of: inMonth,
            promises: promises)
    }

    static func figures(of drills: [DrillHistory.Entry], promises p: Promises) -> Figures {
        var f = Figures()
        var rtos: [Int64] = []
        for e in drills {
            f.drills += 1
            if e.drill.result == .pass { f.passed += 1 } else { f.failed += 1 }
            if let rto = e.drill.rtoMs {
                f.restores += 1
                rtos.append(rto)
                if Double(rto) > p.rto.seconds * 1000 { f.rtoBreaches += 1 }
                if Double(rto) <= p.rtoTypical.seconds * 1000 { f.withinTypical += 1 }
            } else {
                f.rtoBreaches += 1
            }
            if e.drill.target.kind == .latest {
                f.latestTargetDrills += 1
                if let rpo = e.drill.rpoMs {
                    f.rpoMaxMs = max(f.rpoMaxMs ?? 0, rpo)
                    if Double(rpo) >= p.rpo.seconds * 1000 { f.rpoBreaches += 1 }
                }
            }
        }
        rtos.sort()
        f.rtoMaxMs = rtos.last
        f.rtoMedianMs = rtos.isEmpty ? nil : rtos[(rtos.count - 1) / 2]
        return f
    }

    /// The 12 months of the per-tenant rows, oldest first, ending with ``month``.
    public var shownMonths: [Month] { (0..<12).map { month.adding($0 - 11) } }

    /// Tenants the log has drills of in the shown months but that are not active (evidence
    /// outlives tenants); the page lists them after the active ones, marked as not active.
    public var formerTenants: [String] {
        let active = Set(activeTenants)
        return shownDrills.keys.filter { !active.contains($0) }.sorted()
    }

    /// Real restore tests of `tenant` in `month` (one of ``shownMonths``) up to ``asOf``.
    func drills(of tenant: String, in m: Month) -> [DrillHistory.Entry] {
        (shownDrills[tenant] ?? []).filter { m.contains($0.time) }
    }

    /// The chain is intact, no active tenant is overdue, and every drill record was readable.
    public var outcome: Outcome {
        verification.intact && statuses.allSatisfy { $0.state == .ok } && history.invalid.isEmpty ? .ok : .problemFound
    }
}
