import Foundation
import TresorCore
import TresorEvidence

/// What `tresor evidence report` wrote.
public struct EvidenceReportResult: Sendable, Codable {
    public var out: String
    public var month: String
    public var bytes: Int
    public var chainIntact: Bool
    public var verifiedRecords: Int
    public var keyFingerprint: String
    public var overdue: [String]
    public var drills: Int
    public var failedDrills: Int
    public var invalidDrillRecords: Int
    public var outcome: Outcome
}

extension Installation {
    /// `tresor evidence report`: the month's evidence (default: the clock's month) as one
    /// self-contained HTML page at `out`, from the log verified with the home's anchor key.
    /// The page is written atomically. The outcome is a problem when the log does not verify, an
    /// active tenant is overdue at the end of the month, or a drill record cannot be read; the page
    /// is written in every case, saying so at the top.
    public func evidenceReport(month: EvidenceReport.Month?, out: URL) throws -> EvidenceReportResult {
        let now = clock.now()
        let month = month ?? EvidenceReport.Month(containing: now)
        let (verification, history) = try verifiedDrillHistory()
        let terms = policy.serviceTerms
        let report = EvidenceReport(
            month: month, now: now, activeTenants: try activeTenants(), verification: verification, history: history,
            promises: .init(
                rto: terms.rto, rtoTypical: terms.rtoTypical, rtoTypicalSharePercent: terms.rtoTypicalSharePercent,
                rpo: terms.rpo, maxAge: policy.drills.maxAge))
        let html = try EvidenceReportPage.render(report)
        do {
            try Data(html.utf8).write(to: out, options: .atomic)
        } catch {
            throw CoreError.failed("cannot write the report to \(out.path): \(error.localizedDescription)")
        }
        let monthDrills = report.history.entries.filter { $0.time >= month.start && $0.time < month.end && $0.time <= report.asOf && !$0.drill.selfTest }
        return EvidenceReportResult(
            out: out.path, month: month.text, bytes: html.utf8.count, chainIntact: verification.intact,
            verifiedRecords: verification.verifiedRecords, keyFingerprint: verification.trustedKeyFingerprint,
            overdue: report.statuses.filter { $0.state != .ok }.map(\.tenant), drills: monthDrills.count,
            failedDrills: monthDrills.filter { $0.drill.result == .fail }.count,
            invalidDrillRecords: history.invalid.count, outcome: report.outcome)
    }
}
