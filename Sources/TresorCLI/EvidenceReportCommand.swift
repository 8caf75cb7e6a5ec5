import ArgumentParser
import Foundation
import TresorEngine
import TresorEvidence

extension EvidenceCommand {
    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the month's drill and control evidence as one self-contained HTML page; exit 3 if the log does not verify or a tenant is overdue.")
        @Option(help: "The HTML file to write.") var out: String
        @Option(help: "The month, e.g. 2026-11 (default: the current month).") var month: String?

        func validate() throws {
            if let month, EvidenceReport.Month(month) == nil {
                throw ValidationError("cannot read --month '\(month)': use YYYY-MM, e.g. 2026-11")
            }
        }

        func run() throws {
            let r = try ctx.installation().evidenceReport(
                month: month.flatMap(EvidenceReport.Month.init),
                out: URL(fileURLWithPath: out))
            ctx.emit(r, outcome: r.outcome) {
                var lines = ["report for \(r.month) written to \(r.out) (\(r.bytes) bytes): \(r.drills) drills, \(r.failedDrills) failed"]
                lines.append(
                    r.chainIntact
                        ? "evidence chain verified: \(r.verifiedRecords) records, key \(r.keyFingerprint.prefix(16))…"
                        : "PROBLEM: the evidence log does not verify (the report says where); \(r.verifiedRecords) records before the first bad one were used")
                if !r.overdue.isEmpty { lines.append("PROBLEM: overdue: \(r.overdue.joined(separator: ", "))") }
                if r.invalidDrillRecords > 0 { lines.append("PROBLEM: \(r.invalidDrillRecords) drill records could not be read (listed in the report)") }
                return lines.joined(separator: "\n")
            }
        }
    }
}
