import ArgumentParser
import Foundation
import TresorCore
import TresorEngine
import TresorExport

#if canImport(Glibc)
import Glibc
#endif

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a tenant's data as a BagIt bag, and hand out download links (docs/export.md, docs/serve.md).",
        discussion: "tresor export T --out FILE is `tresor export create T --out FILE`.",
        subcommands: [ExportCreateCommand.self, ExportLinkCommand.self, ExportRevokeCommand.self],
        defaultSubcommand: ExportCreateCommand.self)
}

struct ExportCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Write a tenant's documents and database as a BagIt bag in FILE.tar, FILE.tar.zst or FILE.zip (docs/export.md).")

    @Argument(help: "Tenant name.", transform: TenantID.init) var tenant: TenantID
    @Option(help: "The archive to create (must not exist): FILE.tar, FILE.tar.zst or FILE.zip.") var out: String
    @Flag(help: "Write the archive into HOME/exports/TENANT/ (--out is then a file name), where tresor serve offers it through tresor export link.")
    var publish = false
    @Option(help: "Who asks for the export, for the evidence log (default: the OS user).") var by: String?
    @Option(name: .customLong("pg-bin"), help: "Where pg_dump is.") var pgBin = "/usr/lib/postgresql/15/bin"
    @Flag(
        name: .customLong("from-backup"),
        help: "Documents from a backup snapshot and the database restored from backup in a scratch cluster (also for a tenant whose contract ended).")
    var fromBackup = false
    @Option(help: "With --from-backup: the point in time (RFC 3339, e.g. 2026-11-30T12:00:00Z); default: the latest recoverable point.") var at: String?
    @Option(
        help:
            "Only documents added or changed since this snapshot (Tresor-Documents-Snapshot of an earlier export's bag-info.txt); removed paths are listed in tresor-removed-paths.txt."
    ) var since: String?

    func run() throws {
        var atDate: Date? = nil
        if let at {
            guard fromBackup else {
                throw CoreError.usage(
                    "--at needs --from-backup: a live export shows the data as it is now",
                    hint: "tresor export \(tenant) --from-backup --at \(at) --out \(out)")
            }
            guard let d = TimeFormat.parse(at) else {
                throw CoreError.usage("cannot read time '\(at)'", hint: "use RFC 3339, e.g. 2026-11-30T12:00:00Z")
            }
            atDate = d
        }
        guard ArchiveFormat(path: out) != nil else {
            throw CoreError.usage("cannot tell the archive format of '\(out)'", hint: "name the output FILE.tar, FILE.tar.zst or FILE.zip")
        }
        let who = by ?? Self.osUser()
        let installation = try ctx.installation()
        let output = publish ? try installation.publishedExportPath(tenant: tenant, file: out).path : out
        let line = ProgressLine(ctx)
        let r = try installation.export(
            tenant: tenant, output: output, by: who, pgBinDirectory: pgBin,
            options: ExportOptions(fromBackup: fromBackup, at: atDate, since: since),
            binary: tresorBinaryPath
        ) { files, bytes in
            line.update(bytes: UInt64(bytes), files: Int(files))
        }
        line.end()
        if publish { try ExportDigest.record(sha256: r.sha256, for: URL(fileURLWithPath: r.archive)) }
        ctx.emit(r, outcome: r.outcome) {
            var lines = [
                "exported \(r.tenant) to \(r.archive) (\(r.format.rawValue), \(r.bytes) bytes, sha256 \(r.sha256))",
                "  \(r.documentFiles) documents (\(r.documentBytes) bytes) in \(r.directories) folders, \(r.symlinks) symbolic links listed in README.txt",
            ]
            if let db = r.database {
                lines.append(
                    "  database \(db.database) at \(db.lsn) (\(db.snapshotTime)): \(db.tables.count) tables, \(db.tables.reduce(0) { $0 + $1.rows }) rows")
            }
            if let s = r.documentsSnapshot { lines.append("  documents of snapshot \(s)\(r.sinceSnapshot.map { ", changed since \($0)" } ?? "")") }
            if let n = r.removedPaths { lines.append("  \(n) paths removed since then, listed in tresor-removed-paths.txt") }
            for p in r.problems { lines.append("PROBLEM: \(p.path): \(p.reason)") }
            for n in r.nonUTF8Names { lines.append("PROBLEM: \(n): name is not UTF-8; kept as bytes, BagIt validators will report it") }
            for n in r.escapedNames { lines.append("  note: \(n): name is not UTF-8, escaped in the zip (see data/README.txt)") }
            return lines.joined(separator: "\n")
        }
    }

    static func osUser() -> String {
        if let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name { return String(cString: name) }
        return "uid \(geteuid())"
    }
}
