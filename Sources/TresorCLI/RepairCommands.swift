import ArgumentParser
import TresorCore
import TresorEngine

struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair", abstract: "Repair a tenant's repository after check found damage.",
        subcommands: [Index.self, Snapshots.self])

    struct Index: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild index objects from pack headers; remove damaged index objects.")
        @Argument(transform: TenantID.init) var tenant: TenantID

        func run() throws {
            let r = try ctx.installation().repairIndex(tenant: tenant)
            ctx.emit(r, outcome: r.outcome) {
                var lines = [
                    "repaired the index of \(r.tenant): \(r.packs) packs, \(r.packsDescribed) described from their headers into \(r.indexObjectsWritten.count) new index objects, \(r.damagedIndexObjects.count) damaged index objects removed"
                ]
                for (k, why) in r.damagedIndexObjects.sorted(by: { $0.key < $1.key }) { lines.append("  removed: " + naming(k, why)) }
                for (p, why) in r.damagedPacks.sorted(by: { $0.key < $1.key }) { lines.append("  damaged pack \(p), not indexed: \(why)") }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Snapshots: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List damaged snapshots and what they covered; remove them only with --remove.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Flag(help: "Remove the damaged snapshot objects.") var remove = false

        func run() throws {
            let r = try ctx.installation().repairSnapshots(tenant: tenant, remove: remove)
            ctx.emit(r, outcome: r.outcome) {
                var lines = [
                    "\(r.tenant): \(r.damaged.count) damaged snapshots"
                        + (r.damaged.isEmpty ? "" : r.removed.isEmpty ? " (not removed; add --remove)" : ", removed")
                ]
                for s in r.damaged {
                    let covered =
                        s.time.map {
                            "\(s.kind?.rawValue ?? "snapshot") at \($0), \(s.files.map(String.init) ?? "?") files, roots \((s.roots ?? []).joined(separator: ", "))"
                        }
                        ?? "the catalog has no record of what it covered"
                    lines.append("  " + naming(s.key, s.why) + "; covered: \(covered)")
                }
                return lines.joined(separator: "\n")
            }
        }
    }
}
