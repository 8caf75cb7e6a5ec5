import ArgumentParser
import Foundation
import TresorCore
import TresorEngine

struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List recorded job runs, newest first: start, end, result, bytes, error, worker.")
    @Option(help: "Only this tenant's runs.", transform: TenantID.init) var tenant: TenantID?
    @Flag(help: "Only runs that failed or found a problem.") var failed = false
    @Option(help: "Only runs started at or after this time (2026-11-27, RFC 3339) or this long ago (7d, 12h).") var since: String?

    func run() throws {
        let installation = try ctx.installation()
        let sinceDate = try since.map { try JobFilter.parseSince($0, now: installation.clock.now()) }
        let runs = try installation.jobs(JobFilter(tenant: tenant, failedOnly: failed, since: sinceDate))
        ctx.emit(runs) {
            guard !runs.isEmpty else { return "no job runs recorded" + (tenant.map { " for tenant \($0)" } ?? "") }
            return runs.map { r in
                [
                    String(r.id), TimeFormat.string(r.startedAt), r.endedAt.map { TimeFormat.string($0) } ?? "-",
                    r.kind, r.tenant ?? "-", r.result, r.bytes.map { "\($0)B" } ?? "-",
                    r.durationSeconds.map { String(format: "%.1fs", $0) } ?? "-", r.worker ?? "-",
                ]
                .joined(separator: "\t") + (r.error.map { "\terror: \($0)" } ?? "")
            }.joined(separator: "\n")
        }
    }
}
