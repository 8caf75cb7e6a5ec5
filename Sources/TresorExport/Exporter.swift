import Foundation
import TresorCore
import TresorCrypto

#if canImport(Glibc)
import Glibc
#endif

/// What to export and where.
public struct ExportRequest {
    public var tenant: TenantID
    /// The archive to create; its extension picks the format (`.tar`, `.tar.zst`, `.zip`).
    public var output: String
    public var documents: (any DocumentSource)?
    /// The tenant's database (libpq DSN), or nil when the tenant has none.
    public var databaseDSN: String?
    /// Where pg_dump lives.
    public var pgBinDirectory: String
    /// What "source" says in bag-info.txt (`live`).
    public var sourceLabel: String
    public var now: Date
    /// Who asked for the export (recorded in bag-info.txt).
    public var by: String
    /// When the database is a copy restored from backup: the point it was restored to, which
    /// bag-info.txt and README.txt give instead of the copy's own WAL position and clock.
    public var databasePoint: DatabasePoint?
    /// More bag-info.txt labels and values (the snapshots an export from backup read), after
    /// Tresor's own.
    public var extraInfo: [(String, String)] = []
    /// For an export of the documents changed since an earlier snapshot: the paths (below
    /// `data/documents/`) that snapshot had and this one has not, written to the tag file
    /// `tresor-removed-paths.txt` (see ``BagNames/listedPath(_:)``). Nil: a full export, no such file.
    public var removedPaths: [[UInt8]]?
    /// One line for README.txt on where the documents come from (nil: the live folders).
    public var documentsOrigin: String?
    /// The zstd level of a `.tar.zst` archive (the policy's `exports.zstd_level`).
    public var zstdLevel = 3
    /// Called after each document file is in the archive: document files and bytes so far.
    public var progress: ((_ files: Int64, _ bytes: Int64) -> Void)?

    public init(
        tenant: TenantID, output: String, documents: (any DocumentSource)?, databaseDSN: String?,
        pgBinDirectory: String, sourceLabel: String = "live", now: Date, by: String
    ) {
        self.tenant = tenant
        self.output = output
        self.documents = documents
        self.databaseDSN = databaseDSN
        self.pgBinDirectory = pgBinDirectory
        self.sourceLabel = sourceLabel
        self.now = now
        self.by = by
    }
}

/// The point in time a restored database copy shows.
public struct DatabasePoint: Sendable {
    /// The last WAL position replayed (`pg_last_wal_replay_lsn()` after recovery).
    public var lsn: String
    /// The commit time of the last transaction replayed, or the target when none was.
    public var time: String
    /// What was asked for: a time, or `latest`.
    public var target: String

    public init(lsn: String, time: String, target: String) {
        self.lsn = lsn
        self.time = time
        self.target = target
    }
}

/// What an export wrote.
public struct ExportResult: Sendable, Codable {
    public var tenant: String
    public var archive: String
    public var format: ArchiveFormat
    /// The archive's size and SHA-256 (computed while it was written).
    public var bytes: Int64
    public var sha256: String
    public var bagName: String
    public var documentFiles: Int64 = 0
    public var documentBytes: Int64 = 0
    public var directories: Int64 = 0
    /// Symbolic links, listed in data/README.txt (not archived: BagIt has no links).
    public var symlinks: Int64 = 0
    public var database: DatabaseSummary?
    /// Payload-Oxum's parts: every payload file, README.txt and the database files included.
    public var payloadFiles: Int64 = 0
    public var payloadBytes: Int64 = 0
    /// Entries not exported, or exported while they changed.
    public var problems: [DocumentProblem] = []
    /// Tar only: payload paths kept as non-UTF-8 bytes (their manifest lines are not valid BagIt).
    public var nonUTF8Names: [String] = []
    /// Zip only: payload paths whose non-UTF-8 names were escaped.
    public var escapedNames: [String] = []
    /// Exports from backup: the document snapshot exported, and with `--since` the earlier one
    /// and how many paths it had that are gone; the recovery target of the database.
    public var documentsSnapshot: String?
    public var sinceSnapshot: String?
    public var removedPaths: Int?
    public var recoveryTarget: String?

    /// Problems make the export "done, found a problem" (exit 3).
    public var outcome: Outcome { problems.isEmpty && nonUTF8Names.isEmpty ? .ok : .problemFound }
}

/// Writes one export: a BagIt bag in a tar, tar.zst or zip archive, in one streaming pass.
///
/// The archive is written under a temp name in a private directory next to the output, which
/// also holds the spool files; on success it is fsynced and linked to the output name (never over
/// an existing file), and on any failure the directory is removed, so a failed export leaves no
/// plausible-looking archive behind. Memory: one 1 MiB buffer plus libarchive's own buffers.
public enum Exporter {
    /// Refuses an output the export could not create (a usage error): no known extension, an
    /// existing file, no folder to put it in. ``run(_:)`` checks again; callers with slow work
    /// before it (a restore from backup) check first.
    @discardableResult
    public static func checkOutput(_ output: String) throws -> (url: URL, format: ArchiveFormat, directory: String) {
        let out = URL(fileURLWithPath: output).standardizedFileURL
        guard let format = ArchiveFormat(path: out.lastPathComponent) else {
            throw ExportError(
                .usage, "cannot tell the archive format of '\(out.lastPathComponent)'",
                hint: "name the output FILE.tar, FILE.tar.zst or FILE.zip")
        }
        guard !FileManager.default.fileExists(atPath: out.path) else {
            throw ExportError(.usage, "\(out.path) exists", hint: "remove it or choose another --out name")
        }
        let directory = out.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw ExportError(.usage, "no folder \(directory) for the export", hint: "create it first")
        }
        return (out, format, directory)
    }

    public static func run(_ request: ExportRequest) throws -> ExportResult {
        let (out, format, directory) = try checkOutput(request.output)
        var template = Array("\(directory)/.\(out.lastPathComponent).tresor-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ExportError(.io, "cannot create a temp folder in \(directory): \(String(cString: strerror(errno)))")
        }
        let spool = String(cString: made)
        defer {
            // The spool folder holds only this run's spool files and, after a failure, the partial
            // archive: removing it is what makes a failure leave nothing behind.
            try? FileManager.default.removeItem(atPath: spool)
        }
        let partial = spool + "/archive.partial"
        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExportError(.io, "cannot create \(partial): \(String(cString: strerror(errno)))") }
        var fdOpen = true
        defer { if fdOpen { close(fd) } }

        let bagName = String(out.lastPathComponent.dropLast(format.fileExtension.count))
        let mtime = Int64(request.now.timeIntervalSince1970)
        let archive = try ArchiveWriter(
            fd: fd, format: format, zstdLevel: request.zstdLevel,
            zstdThreads: ProcessInfo.processInfo.activeProcessorCount)
        let bag = try BagWriter(archive: archive, bagName: bagName.isEmpty ? request.tenant.rawValue : bagName, mtime: mtime, spoolDirectory: spool)
        var result = ExportResult(tenant: request.tenant.rawValue, archive: out.path, format: format, bytes: 0, sha256: "", bagName: bag.bagName)

        // The database snapshot first: its pg_dumps run while the documents stream.
        let database = try request.databaseDSN.map {
            try LiveDatabaseExport(dsn: $0, binDirectory: request.pgBinDirectory, spoolDirectory: spool)
        }
        var symlinks: [(path: [UInt8], target: [UInt8])] = []
        if let source = request.documents {
            try bag.addDirectory(Array("data/documents".utf8), mode: 0o755, mtime: mtime)
            let problems = try source.walk { entry, content in
                let rel = Array("data/documents/".utf8) + entry.path
                switch entry.kind {
                case .directory:
                    try bag.addDirectory(rel, mode: entry.mode, mtime: entry.mtime)
                    result.directories += 1
                case .symlink(let target):
                    symlinks.append((entry.path, target))
                    result.symlinks += 1
                case .file(let size):
                    guard let content else { throw ExportError(.io, "no content for \(printable(entry.path))") }
                    let w = try bag.addFile(rel, size: size, mode: entry.mode, mtime: entry.mtime, mtimeNanos: entry.mtimeNanos) {
                        try content.read(into: $0)
                    }
                    if w.delivered < size {
                        result.problems.append(
                            DocumentProblem(
                                path: printable(entry.path),
                                reason: "shrank from \(size) to \(w.delivered) bytes while it was exported: the archive holds it padded with zeros"))
                    } else {
                        // One more byte means it grew: the archive holds its first `size` bytes.
                        var probe = [UInt8](repeating: 0, count: 1)
                        let more = try probe.withUnsafeMutableBytes { try content.read(into: $0) }
                        if more > 0 {
                            result.problems.append(
                                DocumentProblem(
                                    path: printable(entry.path),
                                    reason: "grew while it was exported: the archive holds its first \(size) bytes"))
                        }
                    }
                    result.documentFiles += 1
                    result.documentBytes += size
                    request.progress?(result.documentFiles, result.documentBytes)
                }
            }
            result.problems += problems
        }

        result.database = try database?.finish(into: bag)
        if let point = request.databasePoint, result.database != nil {
            result.database?.lsn = point.lsn
            result.database?.snapshotTime = point.time
        }

        result.nonUTF8Names = bag.nonUTF8Names.map(printable)
        result.escapedNames = bag.escapedNames.map { printable($0.original) }
        try bag.addFile(
            Array("data/README.txt".utf8),
            bytes: Array(
                ExportReadme.text(
                    result: result, request: request, symlinks: symlinks,
                    escaped: bag.escapedNames
                ).utf8))
        result.payloadFiles = bag.payloadFiles
        result.payloadBytes = bag.payloadBytes

        var info: [(String, String)] = [
            ("Bag-Software-Agent", "tresor export"),
            ("Bagging-Date", Self.day(request.now)),
            ("External-Identifier", "tenant \(request.tenant)"),
            ("Tresor-Tenant", request.tenant.rawValue),
            ("Tresor-Source", request.sourceLabel),
            ("Tresor-Exported-At", TimeFormat.string(request.now)),
            ("Tresor-Exported-By", request.by),
            ("Tresor-Document-Files", "\(result.documentFiles)"),
            ("Tresor-Document-Bytes", "\(result.documentBytes)"),
            ("Tresor-Document-Folders", "\(result.directories)"),
            ("Tresor-Document-Symlinks", "\(result.symlinks)"),
            ("Tresor-Problems", "\(result.problems.count)"),
        ]
        if let db = result.database {
            info += [
                ("Tresor-Database", db.database),
                ("Tresor-Database-Server-Version", db.serverVersion),
                ("Tresor-Database-Snapshot-LSN", db.lsn),
                ("Tresor-Database-Snapshot-Time", db.snapshotTime),
                ("Tresor-Database-Tables", "\(db.tables.count)"),
                ("Tresor-Database-Rows", "\(db.tables.reduce(0) { $0 + $1.rows })"),
            ]
            if let point = request.databasePoint { info.append(("Tresor-Database-Recovery-Target", point.target)) }
        }
        info += request.extraInfo
        var tagFiles: [(String, [UInt8])] = []
        if let removed = request.removedPaths {
            info.append(("Tresor-Documents-Removed", "\(removed.count)"))
            var text: [UInt8] = []
            for p in removed { text += BagNames.listedPath(Array("data/documents/".utf8) + p) + [0x0A] }
            tagFiles.append(("tresor-removed-paths.txt", text))
        }
        info.append(("Bag-Size", formatSize(bag.payloadBytes)))
        try bag.finish(info: info, tagFiles: tagFiles)
        let (bytes, digest) = try archive.close()
        result.bytes = bytes
        result.sha256 = digest.hex

        guard fsync(fd) == 0 else { throw ExportError(.io, "cannot fsync \(partial): \(String(cString: strerror(errno)))") }
        close(fd)
        fdOpen = false
        // link() refuses an existing name, so a file that appeared meanwhile is never replaced.
        guard link(partial, out.path) == 0 else {
            throw ExportError(errno == EEXIST ? .usage : .io, "cannot create \(out.path): \(String(cString: strerror(errno)))")
        }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            let synced = fsync(dfd) == 0
            close(dfd)
            guard synced else { throw ExportError(.io, "cannot fsync \(directory)") }
        } else {
            throw ExportError(.io, "cannot open \(directory) to fsync it")
        }
        return result
    }

    static func day(_ date: Date) -> String { String(TimeFormat.string(date).prefix(10)) }

    static func formatSize(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(bytes), i = 0
        while v >= 1024, i < units.count - 1 {
            v /= 1024
            i += 1
        }
        return i == 0 ? "\(bytes) B" : String(format: "%.1f", v) + " " + units[i]
    }
}
