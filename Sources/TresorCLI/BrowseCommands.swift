import ArgumentParser
import Foundation
import TresorCore
import TresorEngine

/// `tresor docs ls|find|diff|dump`: browse a tenant's document snapshots.
extension DocsCommand {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List the entries of a snapshot at a path.",
            discussion:
                "Names that are not UTF-8 or hold control characters are shown with those bytes (and backslashes) as \\xNN, marked [escaped]; PATH arguments read \\xNN the same way."
        )
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Argument(help: "A path in the snapshot, starting with a root's name (default: the roots).") var path: String?
        @Option(help: "latest, a snapshot id (prefix), or a date/time.") var snapshot: String = "latest"
        @Flag(help: "Show kind, mode, size and modification time.") var long = false
        @Flag(help: "Everything below PATH, not only its direct entries.") var recursive = false
        @Option(help: "Read this store instead of the tenant's primary store (e.g. its offsite copy).") var store: String?

        func run() throws {
            let r = try ctx.installation().listDocuments(tenant: tenant, snapshot: snapshot, path: path, recursive: recursive, store: store)
            ctx.emit(r) {
                r.entries.map { e in
                    let mark = e.escaped ? "  [escaped]" : ""
                    let link = e.linkTarget.map { " -> \($0)" } ?? ""
                    guard long else { return e.path + mark }
                    return
                        "\(e.kind.padding(toLength: 9, withPad: " ", startingAt: 0)) \(e.mode.leftPad(4)) \(String(e.size).leftPad(12))  \(e.mtime)  \(e.path)\(link)\(mark)"
                }.joined(separator: "\n")
            }
        }
    }

    struct Find: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Find every version of the files whose name (or path, when the pattern has a /) matches a shell glob, across snapshots.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Argument(help: "A shell glob, e.g. 'invoice-2026-*.pdf' or 'invoices/*.pdf' (quote it).") var pattern: String
        @Option(help: "Only snapshots at or after this date/time.") var since: String?
        @Option(help: "Only snapshots at or before this date/time (a bare date: the end of that day).") var until: String?
        @Flag(help: "Print only the matching paths.") var pathOnly = false
        @Flag(help: "Match without regard to case.") var ignoreCase = false
        @Option(help: "Read this store instead of the tenant's primary store (e.g. its offsite copy).") var store: String?

        func run() throws {
            let r = try ctx.installation().findDocuments(
                tenant: tenant, pattern: pattern, since: since, until: until,
                ignoreCase: ignoreCase, store: store)
            ctx.emit(r) {
                if pathOnly { return r.files.map { $0.path + ($0.escaped ? "  [escaped]" : "") }.joined(separator: "\n") }
                var lines: [String] = []
                for f in r.files {
                    lines.append(f.path + (f.escaped ? "  [escaped]" : ""))
                    for (i, v) in f.versions.enumerated() {
                        lines.append(
                            "  version \(i + 1) (\(v.content.prefix(8))): \(formatBytes(v.size)), modified \(v.mtime); in \(v.snapshots) snapshots from \(v.first.short) (\(v.first.time)) to \(v.last.short) (\(v.last.time))"
                        )
                    }
                    for d in f.deletedIn { lines.append("  gone in snapshot \(d.short) (\(d.time))") }
                }
                lines.append("\(r.files.count) files matched in \(r.snapshotsSearched) snapshots")
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Paths added, removed and changed between two snapshots.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Argument(help: "The older snapshot: an id (prefix), latest, or a date/time.") var from: String
        @Argument(help: "The newer snapshot.") var to: String
        @Option(help: "Read this store instead of the tenant's primary store (e.g. its offsite copy).") var store: String?

        func run() throws {
            let r = try ctx.installation().diffDocuments(tenant: tenant, from: from, to: to, store: store)
            ctx.emit(r) {
                var lines = ["\(r.from.short) (\(r.from.time)) -> \(r.to.short) (\(r.to.time))"]
                func mark(_ i: DiffResult.Item) -> String { i.path + (i.escaped ? "  [escaped]" : "") }
                for i in r.added { lines.append("+ \(mark(i))  (\(i.newSize ?? 0) bytes)") }
                for i in r.removed { lines.append("- \(mark(i))  (\(i.oldSize ?? 0) bytes)") }
                for i in r.changed {
                    lines.append(
                        "\(i.change == "content" ? "M" : "m") \(mark(i))  (\(i.oldSize ?? 0) -> \(i.newSize ?? 0) bytes\(i.change == "content" ? "" : ", metadata only"))"
                    )
                }
                lines.append(
                    "\(r.added.count) added (\(formatBytes(r.addedBytes))), \(r.removed.count) removed (\(formatBytes(r.removedBytes))), \(r.changed.count) changed (\(formatBytes(r.changedBytes)) of changed content)"
                )
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one file of a snapshot to standard output.",
            discussion: "The summary (with --json, as JSON) goes to standard error. The access is recorded in the job history and the evidence log.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Argument(help: "The file's path in the snapshot, starting with a root's name.") var path: String
        @Option(help: "latest, a snapshot id (prefix), or a date/time.") var snapshot: String = "latest"
        @Option(help: "Read this store instead of the tenant's primary store (e.g. its offsite copy).") var store: String?
        @Option(help: "Who asks, for the evidence log (default: the OS user).") var by: String?

        func run() throws {
            let r = try ctx.installation().dumpDocument(
                tenant: tenant, path: path, snapshot: snapshot, store: store,
                by: by ?? ExportCreateCommand.osUser(), to: 1)
            let text: String
            if ctx.options.json {
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                text = String(decoding: try e.encode(r), as: UTF8.self)
            } else {
                text = "dumped \(r.path) of snapshot \(r.snapshot.short) of \(r.tenant): \(r.bytes) bytes"
            }
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }
}

private extension String {
    func leftPad(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
