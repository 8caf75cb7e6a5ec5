import ArgumentParser
import Foundation
import TresorCatalog
import TresorCore
import TresorDocuments
import TresorEngine
import TresorPostgres
import TresorRepository

var ctx: Context { Context.current }

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create the catalog, master key and evidence key (if missing).")

    func run() throws {
        let result = try Installation.initialize(home: ctx.home, configFile: ctx.configFile)
        ctx.emit(result) {
            var lines = ["initialised \(result.home)"]
            lines += result.created.map { "  created \($0)" }
            lines += result.existing.map { "  kept    \($0)" }
            lines.append("keep an offline copy of the master key: without it no backup can be read")
            return lines.joined(separator: "\n")
        }
    }
}

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Manage stores (where repositories live).",
        subcommands: [Add.self, List.self, Clean.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a store.")
        @Argument(help: "Store name.") var name: String
        @Option(
            help:
                "file:///path or s3://bucket/prefix?endpoint=URL&region=NAME (credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or [s3] credentials_file, never the URL)."
        ) var url: String
        @Option(help: "The region the store is in.") var region: String

        func run() throws {
            let r = try ctx.installation().addStore(name: name, url: url, region: region)
            ctx.emit(r) { "store \(r.name) added: \(r.url) (region \(r.region))" }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List stores.")
        func run() throws {
            let stores = try ctx.installation().listStores()
            ctx.emit(stores) { stores.map { "\($0.name)\t\($0.region)\t\($0.url)" }.joined(separator: "\n") }
        }
    }
}

extension StoreCommand {
    struct Clean: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove what interrupted writers left in a store (temporaries, multipart uploads) older than store.incomplete_upload_age.")
        @Argument(help: "Store name.") var name: String

        func run() throws {
            let r = try ctx.installation().cleanStore(name: name)
            ctx.emit(r, outcome: r.outcome) {
                "store \(r.store): removed \(r.removed) \(r.kind) older than \(PolicyDuration(seconds: r.olderThanSeconds))"
            }
        }
    }
}

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Manage the master key.", subcommands: [RotateMaster.self])

    struct RotateMaster: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-master",
            abstract: "Make a new master key and re-wrap every tenant's key envelopes in every store under it.",
            discussion: "The old key is kept as <key file>.previous until --finish; run again to resume an interrupted rotation.")
        @Flag(help: "Check that every repository opens with the new key, then remove the previous key.") var finish = false

        func run() throws {
            let r = try ctx.installation().rotateMasterKey(finish: finish)
            ctx.emit(r, outcome: r.outcome) {
                var lines = [
                    "\(r.step == "finish" ? "finished rotation" : r.newKey ? "new master key" : "resumed rotation"): \(r.rewrapped) envelopes re-wrapped, \(r.alreadyCurrent) already under the current key, in \(r.repositories) repositories of \(r.stores) stores (\(String(format: "%.2f", r.seconds)) s)"
                ]
                if r.previousKeyRemoved {
                    lines.append("the previous master key was removed")
                } else if r.step == "rotate" {
                    lines.append("the previous master key is kept until: tresor keys rotate-master --finish")
                }
                lines += r.problems.map { "  problem: \($0)" }
                return lines.joined(separator: "\n")
            }
        }
    }
}

struct TenantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant", abstract: "Manage tenants.", subcommands: [Add.self, List.self, EndContract.self, Hold.self, Release.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a tenant.")
        @Argument(help: "Tenant name (lowercase letters, digits, '-', '_').", transform: TenantID.init) var name: TenantID
        @Option(help: "The tenant's region; its data stays there.") var region: String
        @Option(help: "Primary store name.") var store: String
        @Option(help: "Store that tresor replicate copies to.") var offsite: String?
        @Option(help: "PostgreSQL DSN with replication rights, without a password (see --pg-password-stdin, or PGPASSFILE).") var pg: String?
        @Flag(help: "Read the DSN's password from standard input into a 0600 passfile under the home.") var pgPasswordStdin = false
        @Option(help: "A document root (repeatable).") var docs: [String] = []

        func run() throws {
            var password: String? = nil
            if pgPasswordStdin {
                var text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                if text.hasSuffix("\n") { text.removeLast() }
                if text.hasSuffix("\r") { text.removeLast() }
                password = text
            }
            let t = try ctx.installation().addTenant(
                name: name, region: region, store: store, docs: docs, pgDSN: pg,
                pgPassword: password, offsite: offsite)
            ctx.emit(TenantView(t)) { "tenant \(t.name) added (region \(t.region), store \(t.store), \(t.docRoots.count) document roots)" }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")
        func run() throws {
            let tenants = try ctx.installation().listTenants()
            ctx.emit(tenants.map(TenantView.init)) {
                tenants.map { "\($0.name)\t\($0.region)\t\($0.store)\t\($0.docRoots.joined(separator: ","))" }.joined(separator: "\n")
            }
        }
    }
}

/// A tenant as shown to users: the DSN's password is never printed.
struct TenantView: Encodable {
    var name: String
    var region: String
    var store: String
    var offsite: String?
    var pg: String?
    var docRoots: [String]
    var createdAt: String
    var contractEnd: String?

    init(_ t: TenantRecord) {
        name = t.name
        region = t.region
        store = t.store
        offsite = t.offsiteStore
        pg = t.pgDSN.map(redactDSN)
        docRoots = t.docRoots
        createdAt = TimeFormat.string(t.createdAt)
        contractEnd = t.contractEnd.map { TimeFormat.string($0) }
    }
}

struct RegionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "region", abstract: "Cross-region approvals.", subcommands: [Approve.self])

    struct Approve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record an approval to keep a tenant's data in a store outside its region.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Option var store: String
        @Option var by: String
        @Option var reason: String

        func run() throws {
            let a = try ctx.installation().approveRegion(tenant: tenant, store: store, by: by, reason: reason)
            ctx.emit(a) { "recorded: \(by) approved tenant \(tenant) in store \(store): \(reason)" }
        }
    }
}

struct DocsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "docs", abstract: "Back up and restore uploaded documents.",
        subcommands: [Backup.self, Restore.self, List.self, Find.self, Diff.self, Dump.self])

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Back up all of a tenant's document roots.")
        @Argument(transform: TenantID.init) var tenant: TenantID

        func run() throws {
            let line = ProgressLine(ctx)
            let r = try ctx.installation().backupDocuments(tenant: tenant) { p in
                line.update(bytes: p.bytesRead, files: p.files, note: "\(formatBytes(p.bytes)) scanned  \(p.currentPath)")
            }
            line.end()
            ctx.emit(r, outcome: r.outcome) {
                var lines = [
                    "snapshot \(r.snapshot.short) of \(r.tenant): \(r.snapshot.files) files, \(formatBytes(r.snapshot.bytes))",
                    "  read \(r.filesRead) new or changed files (\(formatBytes(r.bytesRead))), stored \(formatBytes(r.snapshot.newBytesStored)) new in \(String(format: "%.1f", r.seconds)) s",
                ]
                for c in r.snapshot.changedDuringBackup { lines.append("  warning: \(c) changed while it was read") }
                for s in r.skipped { lines.append("  skipped: \(s)") }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restore documents into a new or empty directory.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Option(help: "Target directory (new or empty).") var to: String
        @Option(help: "latest, a snapshot id (prefix), or a date/time.") var snapshot: String = "latest"
        @Option(help: "Restore only this file or directory of the snapshot (starting with the root's name; repeatable).") var path: [String] = []
        @Option(help: "Read this store instead of the tenant's primary store (e.g. its offsite copy).") var store: String?
        @Option(help: "Who asks, for the evidence log of a --path restore (default: the OS user).") var by: String?
        @Flag(help: "Do not flush the restore to disk before returning (faster; a crash may then lose or damage what was restored).") var noSync = false

        func run() throws {
            let line = ProgressLine(ctx)
            let r = try ctx.installation().restoreDocuments(
                tenant: tenant, to: to, snapshot: snapshot, paths: path, store: store,
                by: by ?? ExportCreateCommand.osUser(), sync: !noSync
            ) { done, total in
                line.update(bytes: done, totalBytes: total)
            }
            line.end()
            ctx.emit(r, outcome: r.outcome) {
                var lines = [
                    "restored snapshot \(r.snapshot.prefix(8)) of \(r.tenant) to \(r.target): \(r.report.files) files (\(r.report.hardLinks) as hard links), \(r.report.directories) directories, \(r.report.symlinks) symlinks, \(r.report.specialFiles) special files, \(formatBytes(r.report.bytes)) in \(String(format: "%.1f", r.seconds)) s"
                ]
                for (p, why) in r.report.failed.sorted(by: { $0.key < $1.key }) { lines.append("  failed (not restored): \(p): \(why)") }
                for (p, why) in r.report.incomplete.sorted(by: { $0.key < $1.key }) { lines.append("  incomplete: \(p): \(why)") }
                return lines.joined(separator: "\n")
            }
        }
    }
}

struct SnapshotsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshots", abstract: "List a tenant's snapshots.")
    @Argument(transform: TenantID.init) var tenant: TenantID
    @Option(help: "Read this store instead of the tenant's primary store (e.g. its offsite copy).") var store: String?

    func run() throws {
        let list = try ctx.installation().snapshots(tenant: tenant, store: store)
        ctx.emit(list) {
            list.map { "\($0.short)  \($0.time)  \($0.kind)  \($0.files) files  \(formatBytes($0.bytes))" }.joined(separator: "\n")
        }
    }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Verify repositories; exit 3 when something is damaged.")
    @Argument(transform: TenantID.init) var tenant: TenantID?
    @Flag(help: "Read, decrypt and hash every chunk.") var readData = false
    @Option(help: "Read this percentage of packs, chosen at random.") var readDataSubset: Double?
    @Option(help: "Check this store instead of each tenant's primary store (e.g. the offsite copy).") var store: String?

    func validate() throws {
        if let p = readDataSubset, !(0...100).contains(p) {
            throw ValidationError("--read-data-subset must be between 0 and 100")
        }
    }

    func run() throws {
        let mode: Checker.ReadData = readData ? .all : readDataSubset.map { .subset($0) } ?? .none
        let line = ProgressLine(ctx)
        let r = try ctx.installation().check(tenant: tenant, readData: mode, store: store) { name, packs, bytes, total in
            line.update(bytes: bytes, totalBytes: total, files: packs, unit: "packs", note: name)
        }
        line.end()
        ctx.emit(r, outcome: r.outcome) {
            var lines: [String] = []
            for (name, rep) in r.tenants.sorted(by: { $0.key < $1.key }) {
                let wal = rep.walFiles > 0 ? ", \(rep.walFiles) wal files (read \(rep.walFilesRead))" : ""
                lines.append(
                    "\(name): \(rep.snapshots) snapshots, \(rep.packs) packs, \(rep.blobs) blobs\(wal); read \(rep.packsRead) packs (\(formatBytes(rep.bytesRead)))"
                        + (rep.isClean ? ": ok" : ": PROBLEMS"))
                for (k, why) in rep.damagedKeys.sorted(by: { $0.key < $1.key }) { lines.append("  damaged: " + naming(k, why)) }
                for (k, why) in rep.damagedIndexes.sorted(by: { $0.key < $1.key }) { lines.append("  damaged index object: " + naming(k, why)) }
                if !rep.damagedIndexes.isEmpty {
                    lines.append(
                        "    \(rep.packsDescribedFromHeaders) packs were checked from their own headers; rebuild the index: tresor repair index \(name)")
                }
                for s in rep.damagedSnapshots {
                    lines.append("  damaged snapshot: " + naming(s.key, s.why))
                    if let time = s.time {
                        lines.append(
                            "    it covered: \(s.kind?.rawValue ?? "snapshot") at \(time), \(s.files.map(String.init) ?? "?") files, roots \((s.roots ?? []).joined(separator: ", "))"
                        )
                    } else {
                        lines.append("    the catalog has no record of what it covered")
                    }
                }
                if !rep.damagedSnapshots.isEmpty { lines.append("    to remove damaged snapshots: tresor repair snapshots \(name) --remove") }
                for (p, why) in rep.damagedPacks.sorted(by: { $0.key < $1.key }) { lines.append("  damaged pack \(p): \(why)") }
                for p in rep.problems { lines.append("  \(p)") }
                for (s, paths) in rep.affected.sorted(by: { $0.key < $1.key }) {
                    lines.append("  snapshot \(s.prefix(8)): \(paths.count) files affected")
                    for p in paths.prefix(20) { lines.append("    \(p)") }
                    if paths.count > 20 { lines.append("    … and \(paths.count - 20) more") }
                }
            }
            return lines.joined(separator: "\n")
        }
    }
}

struct ReplicateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replicate", abstract: "Copy what another store lacks of a tenant's repository, verified.")
    @Argument(transform: TenantID.init) var tenant: TenantID
    @Option(help: "Target store (default: the tenant's offsite store).") var to: String?

    func run() throws {
        let line = ProgressLine(ctx)
        let r = try ctx.installation().replicate(tenant: tenant, to: to) { done, total in
            line.update(done: done, total: total, unit: "objects copied")
        }
        line.end()
        ctx.emit(r, outcome: r.outcome) {
            var lines = [
                "replicated \(r.tenant) from \(r.from) to \(r.to): \(r.copied) objects copied and verified (\(formatBytes(r.bytesCopied))), \(r.alreadyPresent) of \(r.objects) already there, in \(String(format: "%.1f", r.seconds)) s"
            ]
            for p in r.problems { lines.append("  problem: \(p)") }
            return lines.joined(separator: "\n")
        }
    }
}

/// `why` alone when it names `key` already, else `key: why`.
func naming(_ key: String, _ why: String) -> String { why.contains(key) ? why : "\(key): \(why)" }

func formatBytes(_ n: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n), i = 0
    while v >= 1024 && i < units.count - 1 {
        v /= 1024
        i += 1
    }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
}
