import ArgumentParser
import Foundation
import TresorCore
import TresorEngine
import TresorEvidence

struct DrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill", abstract: "Restore drills and the control over them.",
        subcommands: [Run.self, Clean.self, Status.self, SelfTest.self])

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
                    lines.append(
                        "PROBLEM: the evidence log does not verify at \(bad); only the \(r.chain.verifiedRecords) records before it were read and no control record was appended"
                    )
                }
                if r.chain.tornTailBytes > 0 {
                    lines.append("PROBLEM: \(r.chain.tornTailBytes) bytes of a write torn by a crash after the last record (set aside by this check's append)")
                }
                for s in r.tenants {
                    let last =
                        s.lastPass.map { "last pass \(TimeFormat.string($0)) (\(s.ageDays ?? 0) days, record \(s.lastPassSeq ?? 0))" } ?? "no passing drill"
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
                if r.drillsAfterNow > 0 {
                    lines.append("note: \(r.drillsAfterNow) drill records are dated after \(TimeFormat.string(r.asOf)) and were not considered")
                }
                let late = r.overdue.count
                lines.append(
                    "\(r.tenants.count - late) of \(r.tenants.count) tenants passed a drill within \(r.maxAge)"
                        + (r.controlRecordSeq.map { "; control recorded as evidence record \($0)" } ?? ""))
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Restore a tenant's database and a sample of its documents into scratch, check them, and record the drill as evidence; exit 3 if a check failed or could not run."
        )
        @Argument(help: "The tenant.", transform: TenantID.init) var tenant: TenantID
        @Option(help: "random (default: a random WAL position in the recoverable window), latest, or a time (RFC 3339).")
        var target: String = "random"
        @Option(help: "The seed for the random target and the document sample (default: a new one, recorded).")
        var seed: Int64?

        func validate() throws {
            if target != "random", target != "latest", TimeFormat.parse(target) == nil {
                throw ValidationError("cannot read --target '\(target)': use random, latest or a time such as 2026-11-30T12:00:00Z")
            }
        }

        func run() throws {
            let choice: DrillTargetChoice
            switch target {
            case "random": choice = .random
            case "latest": choice = .latest
            default: choice = .time(TimeFormat.parse(target)!)  // validate() parsed it
            }
            let line = ProgressLine(ctx)
            let shown = Locked("")
            let r = try ctx.installation().runDrill(tenant: tenant, target: choice, seed: seed, binary: tresorBinaryPath) { stage, bytes, total in
                let changed = shown.withLock { s in
                    defer { s = stage }; return s != stage
                }
                line.update(bytes: bytes, totalBytes: total, note: stage, force: changed)
            }
            line.end()
            ctx.emit(r, outcome: r.outcome) {
                let d = r.record
                var lines = [
                    "drill \(d.drillID) of tenant \(r.tenant): \(d.result == .pass ? "PASS" : "FAIL")"
                        + " (target \(d.target.kind.rawValue) \(d.target.time ?? d.target.lsn ?? "")\(d.seed.map { ", seed \($0)" } ?? ""))"
                ]
                for c in d.checks {
                    lines.append("  \(c.status.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(c.name)\(c.reason.map { ": \($0)" } ?? "")")
                }
                lines.append(
                    "  rto \(d.rtoMs.map { "\($0) ms" } ?? "none")\(d.rpoMs.map { ", rpo \($0) ms" } ?? ""); restore \(d.timings.restoreMs) ms, recovery \(d.timings.recoveryMs) ms, checks \(d.timings.checksMs) ms"
                )
                if d.rtoMs != nil {
                    lines.append(
                        "  the rto leaves out the syncs a restore that replaces production pays: the scratch copy is not synced and its server runs with fsync=off"
                    )
                }
                lines.append("  \(d.filesRestored) files, \(d.bytesRestored) bytes restored; evidence record \(r.evidenceSeq.map(String.init) ?? "?")")
                if !r.cleaned.directories.isEmpty { lines.append("  removed leftovers of killed drills: \(r.cleaned.directories.joined(separator: ", "))") }
                if let h = d.heartbeat { lines.append("  restored heartbeat \(h): data-loss bound \(d.dataLossBoundMs.map { "\($0) ms" } ?? "?")") }
                if let t = d.target.replayedCommit { lines.append("  last replayed commit \(t); next commit in the archive \(d.target.nextCommit ?? "none")") }
                if let s = r.selfTest { lines += ["  followed by a self-test (drills.self_test_every):"] + DrillCommand.selfTestLines(s).map { "  " + $0 } }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct SelfTest: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "self-test",
            abstract:
                "Run the drill over an undamaged copy and over deliberately damaged ones (a flipped byte, a missing WAL segment, a wrong document hash) and record that each damage was caught; exit 3 if one went unnoticed."
        )
        @Argument(help: "The tenant.", transform: TenantID.init) var tenant: TenantID
        @Option(help: "The seed for the random target and the document sample (default: a new one, recorded).")
        var seed: Int64?

        func run() throws {
            let r = try ctx.installation().runDrillSelfTest(tenant: tenant, seed: seed, binary: tresorBinaryPath)
            ctx.emit(r, outcome: r.outcome) { DrillCommand.selfTestLines(r).joined(separator: "\n") }
        }
    }

    static func selfTestLines(_ r: DrillSelfTestResult) -> [String] {
        let d = r.record
        var lines = [
            "drill self-test \(d.drillID) of tenant \(r.tenant): \(d.result == .pass ? "PASS" : "FAIL")"
                + " (target \(d.target.kind.rawValue) \(d.target.lsn ?? d.target.time ?? "")\(d.seed.map { ", seed \($0)" } ?? ""))"
        ]
        if let baseline = d.checks.first(where: { $0.name == "baseline" }) {
            lines.append(
                "  \(baseline.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) baseline (undamaged copy)\(baseline.reason.map { ": \($0)" } ?? "")"
            )
        }
        for x in d.damages ?? [] {
            let how = x.status == .caught ? ": by \(x.caughtBy.joined(separator: ", "))" : x.reason.map { ": \($0)" } ?? ""
            lines.append("  \(x.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(x.name)\(how)")
        }
        for c in d.checks where c.name == "cleanup" { lines.append("  failed      cleanup: \(c.reason ?? "")") }
        lines.append("  evidence record \(r.evidenceSeq.map(String.init) ?? "?")")
        return lines
    }

    struct Clean: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop the scratch servers and remove the scratch directories that killed drills and exports from backup left behind.")

        func run() throws {
            let r = try ctx.installation().cleanDrills()
            ctx.emit(r) {
                var lines = r.directories.map { "removed \($0)" }
                if r.serversStopped > 0 { lines.append("stopped \(r.serversStopped) scratch servers") }
                lines += r.inUse.map { "left \($0): its drill or export is still running" }
                if lines.isEmpty { lines.append("nothing to clean") }
                return lines.joined(separator: "\n")
            }
        }
    }
}
