import ArgumentParser
import Foundation
import TresorCore
import TresorEngine
import TresorPostgres

struct RetentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention", abstract: "Keep what the policy promises (PITR window, daily snapshots) and delete the rest.",
        subcommands: [RetentionPlanCommand.self, RetentionApplyCommand.self])
}

struct RetentionPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plan", abstract: "Print what retention keeps and drops, and why.")
    @Argument(help: "Tenants (default: all).", transform: TenantID.init) var tenants: [TenantID] = []

    func run() throws {
        let inst = try ctx.installation()
        let ids = tenants.isEmpty ? try inst.tenantIDs() : tenants
        var plans: [String: RetentionPlan] = [:]
        for id in ids { plans[id.rawValue] = try inst.retentionPlan(tenant: id) }
        let problems = plans.values.contains { !$0.problems.isEmpty }
        ctx.emit(plans, outcome: problems ? .problemFound : .ok) {
            plans.keys.sorted().map { describe(tenant: $0, plan: plans[$0]!) }.joined(separator: "\n")
        }
    }
}

struct RetentionApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Apply the retention plan in the primary and the offsite store, then prune.")
    @Argument(help: "Tenants (default: all).", transform: TenantID.init) var tenants: [TenantID] = []
    @Flag(help: "Print the plan and the bytes it would free; change nothing.") var dryRun = false

    func run() throws {
        let inst = try ctx.installation()
        let ids = tenants.isEmpty ? try inst.tenantIDs() : tenants
        var results: [RetentionResult] = []
        for id in ids { results.append(try inst.applyRetention(tenant: id, dryRun: dryRun)) }
        let failed = results.flatMap { r in r.failedStores.map { "\(r.tenant) in store \($0)" } + (r.accessLogError.map { ["the access log (\($0))"] } ?? []) }
        ctx.emit(results, outcome: results.contains { $0.outcome == .problemFound } ? .problemFound : .ok) {
            results.map { r in
                var lines = [describe(tenant: r.tenant, plan: r.plan)]
                for s in r.stores {
                    if let e = s.error {
                        lines.append("  store \(s.store): FAILED: \(e)")
                    } else if let p = s.prune {
                        lines.append(
                            "  store \(s.store): \(dryRun ? "would delete" : "deleted") \(p.snapshotsDeleted) snapshots, \(p.packsDeleted) packs (\(formatBytes(p.packBytesFreed))), \(s.walDeleted) WAL objects (\(formatBytes(s.walBytesFreed))); \(p.indexesWritten) index objects rewritten; \(p.packsRepacked) mostly-garbage packs repacked into \(p.packsWritten)"
                        )
                    }
                }
                for c in r.classes {
                    let kinds = c.deletedByKind.keys.sorted().map { "\($0) \(c.deletedByKind[$0]!)" }.joined(separator: ", ")
                    lines.append(
                        "  \(c.name): \(dryRun ? "would delete" : "deleted") \(c.deleted) older than \(c.cutoff) (\(c.policyKey) = \(c.period))"
                            + (kinds.isEmpty ? "" : ": \(kinds)"))
                }
                if let a = r.accessLog {
                    lines.append(
                        "  access log: \(dryRun ? "would delete" : "deleted") \(a.deleted) entries older than \(inst.policy.accessLog.retention), kept \(a.kept)"
                            + (a.unreadable > 0 ? "; PROBLEM: \(a.unreadable) lines without a readable time kept" : ""))
                } else if let e = r.accessLogError {
                    lines.append("  access log: FAILED: \(e)")
                }
                lines.append(
                    "  bytes to free: " + r.bytesToFree.keys.sorted().map { "\($0) \(formatBytes(r.bytesToFree[$0]!))" }.joined(separator: ", ")
                        + (dryRun ? " (dry run: nothing changed)" : ""))
                return lines.joined(separator: "\n")
            }.joined(separator: "\n")
        }
        if !failed.isEmpty {
            throw CoreError.failed("retention could not prune \(failed.joined(separator: ", ")); the rest was pruned")
        }
    }
}

private func describe(tenant: String, plan: RetentionPlan) -> String {
    var lines = [
        "\(tenant): window \(plan.windowStart) … \(plan.now): keep \(plan.keepSnapshots.count) snapshots and \(plan.keepWAL.count) WAL objects; drop \(plan.dropSnapshots.count) snapshots and \(plan.dropWAL.count) WAL objects (\(formatBytes(UInt64(plan.walBytesToFree))))"
    ]
    for d in plan.dropSnapshots { lines.append("  drop snapshot \(d.item): \(d.reason)") }
    for p in plan.problems { lines.append("  problem: \(p)") }
    return lines.joined(separator: "\n")
}
