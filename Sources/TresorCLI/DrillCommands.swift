import ArgumentParser
import Foundation
import TresorCore
import TresorEngine
import TresorEvidence

struct DrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill", abstract: "Restore drills and the control over them.",
        subcommands: [Status.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each active tenant's last passing drill, from the verified evidence log; exit 3 if one is older than the allowed age or never passed.")
        @Option(name: .customLong("max-age"), help: "The allowed age, e.g. 30d (default: drills.max_age of the policy).")
        var maxAge: String?

        func validate() throws {
            if let maxAge, PolicyDuration(maxAge).map({ $0.seconds > 0 }) != true {
                throw ValidationError("cannot read --max-age '\(maxAge)': use a duration such as 30d or 720h")
            }
        }

        func run() throws {
            let r = try ctx.installation().drillStatus(maxAge: maxAge.flatMap(PolicyDuration.init))
            ctx.emit(r, outcome: r.outcome) {
                var lines: [String] = []
                if let bad = r.chain.firstBad {
                    lines.append("PROBLEM: the evidence log does not verify at \(bad); only the \(r.chain.verifiedRecords) records before it were read and no control record was appended")
                }
                if r.chain.tornTailBytes > 0 {
                    lines.append("PROBLEM: \(r.chain.tornTailBytes) bytes of a write torn by a crash after the last record (set aside by this check's append)")
                }
                for s in r.tenants {
                    let last = s.lastPass.map { "last pass \(TimeFormat.string($0)) (\(s.ageDays ?? 0) days, record \(s.lastPassSeq ?? 0))" } ?? "no passing drill"
                    let flag: String
                    switch s.state {
                    case .ok: flag = "ok     "
                    case .overdue: flag = "OVERDUE"
                    case .neverPassed: flag = "NEVER  "
                    }
                    lines.append("\(flag)\t\(s.tenant)\t\(last)")
                }
                if r.tenants.isEmpty { lines.append("no active tenants") }
                for i in r.invalidDrillRecords { lines.append("PROBLEM: drill record \(i.seq) is not counted: \(i.reason)") }
                if r.drillsAfterNow > 0 { lines.append("note: \(r.drillsAfterNow) drill records are dated after \(TimeFormat.string(r.asOf)) and were not considered") }
                let late = r.overdue.count
                lines.append("\(r.tenants.count - late) of \(r.tenants.count) tenants passed a drill within \(r.maxAge)"
                             + (r.controlRecordSeq.map { "; control recorded as evidence record \($0)" } ?? ""))
                return lines.joined(separator: "\n")
            }
        }
    }
}
