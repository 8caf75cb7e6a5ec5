import ArgumentParser
import Foundation
import TresorCore
import TresorEngine

struct TickCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tick",
        abstract: "Run every job that is due per the policies and the catalog (from cron, e.g. every 5 minutes).",
        discussion:
            "Exit 1 when a due job failed (the others still ran), 3 when one found a problem, 0 otherwise; jobs another process is running are listed as locked."
    )
    @Option(name: .customLong("metrics-out"), help: "Write the Prometheus textfile here at the end (as tresor metrics --out).") var metricsOut: String?

    func run() throws {
        let installation = try ctx.installation()
        // A test hook: hold every claimed job this long before running it (see Installation.holdAfterClaim).
        if let hold = ctx.environment["TRESOR_TEST_HOLD_AFTER_CLAIM"].flatMap(Double.init) { installation.holdAfterClaim = hold }
        let r = try installation.tick(metricsOut: metricsOut, executor: InstallationTickExecutor(binary: tresorBinaryPath))
        ctx.emit(r, outcome: r.outcome) {
            var lines = ["tick at \(TimeFormat.string(r.asOf)): \(r.jobs.count) due jobs for \(r.tenants) tenants (\(r.concurrency) at once)"]
            for j in r.jobs {
                lines.append("  \(j.kind) \(j.tenant ?? j.store ?? "-"): \(j.result.rawValue)" + (j.error.map { ": \($0)" } ?? ""))
            }
            if let m = r.metrics { lines.append("  metrics: \(m.samples) samples to \(m.path)") }
            if r.alreadyDone > 0 { lines.append("  \(r.alreadyDone) due jobs were done by another tick meanwhile") }
            if !r.notYetScheduled.isEmpty { lines.append("  not scheduled by tick yet: " + r.notYetScheduled.joined(separator: ", ")) }
            return lines.joined(separator: "\n")
        }
        if r.failed > 0 { ctx.exitOverride = ExitCodes.failed }
    }
}
