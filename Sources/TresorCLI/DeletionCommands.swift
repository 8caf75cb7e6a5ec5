import ArgumentParser
import Foundation
import TresorCatalog
import TresorCore
import TresorEngine

extension TenantCommand {
    struct EndContract: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "end-contract", abstract: "Record the end of a tenant's contract: the deletion clock starts.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Option(help: "When the contract ended (RFC 3339 or YYYY-MM-DD).") var date: String

        func run() throws {
            guard let d = TimeFormat.parse(date) ?? TimeFormat.parse(date + "T00:00:00Z") else {
                throw CoreError.usage("cannot read --date '\(date)'", hint: "use RFC 3339, e.g. 2026-11-27T00:00:00Z, or 2026-11-27")
            }
            let t = try ctx.installation().endContract(tenant: tenant, at: d)
            ctx.emit(TenantView(t)) { "contract of \(t.name) ended \(TimeFormat.string(d))" }
        }
    }

    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a tenant on legal hold: deletion waits until release.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Option var reason: String
        @Option var by: String

        func run() throws {
            let t = try ctx.installation().holdTenant(tenant, reason: reason, by: by)
            ctx.emit(TenantView(t)) { "tenant \(t.name) is on hold (by \(by))" }
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift a tenant's legal hold.")
        @Argument(transform: TenantID.init) var tenant: TenantID

        func run() throws {
            let t = try ctx.installation().releaseTenant(tenant)
            ctx.emit(TenantView(t)) { "tenant \(t.name) released from hold" }
        }
    }
}

struct DeletionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deletion", abstract: "Post-contract deletion with crypto-shredding.", subcommands: [Run.self, Calendar.self])

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every tenant past its contract end plus the policy's delay and not on hold.")
        @Flag(name: .customLong("dry-run"), help: "Print the plan; change nothing.") var dryRun = false
        @Option(name: .customLong("crash-after"), help: .hidden) var crashAfter: String?

        func run() throws {
            let stop = try crashAfter.map { name -> DeletionStep in
                guard let s = DeletionStep(rawValue: name) else { throw CoreError.usage("unknown step '\(name)'") }
                return s
            }
            let r = try ctx.installation().runDeletion(dryRun: dryRun) { step in
                // Tests: die like `kill -9` right after `stop` was recorded.
                if step == stop { kill(getpid(), SIGKILL) }
            }
            ctx.emit(r, outcome: r.outcome) {
                var lines: [String] = []
                for t in r.tenants {
                    let when = t.deadline.map { " (deadline \(TimeFormat.string($0)))" } ?? ""
                    lines.append("\(t.state)\t\(t.tenant)\(when)")
                    for (place, c) in t.removed.sorted(by: { $0.key < $1.key }) { lines.append("  removed \(place): \(c.count) items, \(c.bytes) bytes") }
                    if r.dryRun, let f = t.footprint {
                        for s in f.stores { lines.append("  would destroy keys then delete \(s.prefix) in store \(s.name) (\(s.role))") }
                        for p in f.paths { lines.append("  would remove \(p.kind) \(p.path)") }
                    }
                    if let seq = t.certificateSeq { lines.append("  certificate: evidence record \(seq)") }
                    for p in t.problems { lines.append("  PROBLEM: \(p)") }
                }
                if r.tenants.isEmpty { lines.append("no ended contracts") }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Calendar: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per ended contract, the date by which the last copy is gone; exit 3 if one lies past contract end + 90 days.")

        func run() throws {
            let c = try ctx.installation().deletionCalendar()
            ctx.emit(c, outcome: c.outcome) {
                var lines = c.entries.map { e in
                    "\(e.problem ? "PROBLEM " : "")\(e.state)\t\(e.tenant)\tlast copy gone \(e.lastCopyGone.map { TimeFormat.string($0) } ?? "open")\t\(e.reasoning)"
                }
                if lines.isEmpty { lines.append("no ended contracts") }
                return lines.joined(separator: "\n")
            }
        }
    }
}

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep", abstract: "Hunt residual data of deleted tenants and tenants past their deadline; exit 3 when something is found.")
    @Option(help: "A folder to search (repeatable).") var root: [String] = []
    @Option(help: "A PostgreSQL server to search (repeatable).") var pg: [String] = []
    @Option(help: "A store to search (repeatable; default: every store).") var store: [String] = []
    @Flag(help: "Remove what is found and record it as evidence.") var purge = false

    func run() throws {
        let r = try ctx.installation().sweep(roots: root, dsns: pg, storeNames: store, purge: purge)
        ctx.emit(r, outcome: r.outcome) {
            var lines = r.findings.map { "\($0.purged ? "purged" : "FOUND ")\t\($0.tenant)\t\($0.kind)\t\($0.place)" }
            lines += r.problems.map { "PROBLEM: \($0)" }
            lines.append(
                "\(r.findings.count) residues of \(r.targets.count) deleted or overdue tenants"
                    + (r.evidenceSeq.map { "; recorded as evidence record \($0)" } ?? ""))
            return lines.joined(separator: "\n")
        }
    }
}
