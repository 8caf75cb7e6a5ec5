import Foundation
import TresorCatalog
import TresorCore
import TresorDocuments
import TresorEvidence
import TresorExport
import TresorPostgres
import TresorRepository

#if canImport(Glibc)
import Glibc
#endif

/// Where an export reads from, besides the tenant (`tresor export` options).
public struct ExportOptions: Sendable {
    /// Documents from a backup snapshot and the database restored from backup into a scratch
    /// cluster, instead of the live folders and server.
    public var fromBackup: Bool
    /// With `fromBackup`: the point in time (the latest document snapshot at or before it, the
    /// database recovered to it). Nil: the latest snapshot and the latest recoverable point.
    public var at: Date?
    /// Only documents added or changed since this document snapshot (an id, a unique prefix of
    /// one, or a date as `docs restore --snapshot` reads it); removed paths are listed in the bag.
    /// The documents then come from the latest snapshot (or the one at `at`).
    public var since: String?

    public init(fromBackup: Bool = false, at: Date? = nil, since: String? = nil) {
        self.fromBackup = fromBackup
        self.at = at
        self.since = since
    }
}

extension Installation {
    /// `tresor export T --out FILE [--from-backup [--at TIME]] [--since SNAPSHOT]`: a BagIt bag of
    /// the tenant's documents and database (see ``Exporter``), then an `export` record in the
    /// evidence log. An export without its record does not stand: when the record cannot be
    /// written the archive is removed and the error thrown. `by` is who asked (the OS user unless
    /// given); `binary` is the tresor executable a restored scratch cluster fetches WAL with.
    ///
    /// Live (no options): the live folders and one snapshot of the live server. With `fromBackup`
    /// the documents come from a snapshot and the database is restored to the point in a scratch
    /// cluster under `HOME/scratch/export-<id>/` (the restore `pg restore` and drills use), which
    /// is stopped and removed whatever happens; an ended tenant (not yet deleted) exports so.
    /// With `since` only the documents changed since that snapshot go in.
    public func export(
        tenant id: TenantID, output: String, by: String, pgBinDirectory: String,
        options: ExportOptions = ExportOptions(), binary: String = "tresor",
        progress: ((_ files: Int64, _ bytes: Int64) -> Void)? = nil
    ) throws -> ExportResult {
        let name = id.rawValue
        let t = try tenant(id)
        if options.at != nil && !options.fromBackup {
            throw CoreError.usage(
                "--at needs --from-backup: a live export shows the data as it is now",
                hint: "tresor export \(name) --from-backup --at TIME --out FILE")
        }
        // Refused before any restore starts, not after it.
        try Exporter.checkOutput(output)
        guard options.fromBackup || options.since != nil else {
            guard !t.docRoots.isEmpty || t.pgDSN != nil else {
                throw CoreError.usage(
                    "tenant '\(name)' has neither document roots nor a database to export",
                    hint: Self.addedWithoutHint(id, "--docs DIR or --pg DSN"))
            }
            let roots = DocumentBackup.roots(for: t.docRoots).map { LiveFolderSource.Root(path: $0.path, label: $0.label) }
            return try run(
                Job(.export, tenant: id) { [self] in
                    try exportRecorded(
                        ExportRequest(
                            tenant: id, output: output, documents: roots.isEmpty ? nil : LiveFolderSource(roots: roots),
                            databaseDSN: t.pgDSN, pgBinDirectory: pgBinDirectory, now: clock.now(), by: by),
                        options: options, progress: progress)
                })
        }
        return try run(
            Job(.export, tenant: id) { [self] in
                try exportFromBackup(t, output: output, by: by, pgBinDirectory: pgBinDirectory, options: options, binary: binary, progress: progress)
            })
    }

    /// The documents part of an export from backup: the chosen snapshot's nodes (only what
    /// changed since `options.since`, with the folders that hold it), bag-info lines, and the
    /// removed paths. Nil when the tenant has no documents (no roots and no snapshots).
    private func snapshotDocuments(
        _ t: TenantRecord, repo: TenantRepository, options: ExportOptions
    )
        throws -> (source: SnapshotDocumentSource, ids: [ObjectID], info: [(String, String)], removed: [[UInt8]]?, origin: String)?
    {
        let all = try repo.snapshots()
        let docs = all.filter { $0.manifest.kind == .documents }
        guard !docs.isEmpty || !t.docRoots.isEmpty else {
            if let s = options.since {
                throw CoreError.usage("--since \(s): tenant '\(t.name)' has no documents", hint: "tresor snapshots \(t.name)")
            }
            return nil
        }
        let chosen: (id: ObjectID, manifest: SnapshotManifest)
        if let at = options.at {
            guard let c = try docs.last(where: { try $0.manifest.checkedDate() <= at }) else {
                throw CoreError.usage(
                    "tenant '\(t.name)' has no document snapshot at or before \(TimeFormat.string(at))",
                    hint: "tresor snapshots \(t.name)")
            }
            chosen = c
        } else {
            guard let c = docs.last else {
                throw CoreError.usage(
                    "tenant '\(t.name)' has document roots but no document snapshot to export from",
                    hint: "tresor docs backup \(t.name)")
            }
            chosen = c
        }
        let index = try repo.loadIndex()
        let cache = try TreeBlobCache(repository: repo, index: index)
        let nodes = try cache.nodes(of: chosen.manifest)
        var info: [(String, String)] = [("Tresor-Documents-Snapshot", chosen.id.hex), ("Tresor-Documents-Snapshot-Time", chosen.manifest.time)]
        var origin = "The documents are those of backup snapshot \(chosen.id.hex) (\(chosen.manifest.time))."
        guard let sinceText = options.since else {
            return (SnapshotDocumentSource(repository: repo, index: index, nodes: nodes), [chosen.id], info, nil, origin)
        }
        let since = try Self.selectSnapshot(sinceText, from: all, tenant: t.name)
        guard try since.manifest.checkedDate() <= chosen.manifest.checkedDate() else {
            throw CoreError.usage(
                "--since \(sinceText): snapshot \(since.id.short) (\(since.manifest.time)) is newer than the snapshot exported, \(chosen.id.short) (\(chosen.manifest.time))",
                hint: "pass the Tresor-Documents-Snapshot of an earlier export")
        }
        let (included, removed) = Self.changedSince(old: try cache.nodes(of: since.manifest), new: nodes)
        info.append(("Tresor-Documents-Since-Snapshot", since.id.hex))
        info.append(("Tresor-Documents-Since-Snapshot-Time", since.manifest.time))
        origin += " Only what changed since snapshot \(since.id.hex) (\(since.manifest.time)) is included."
        return (SnapshotDocumentSource(repository: repo, index: index, nodes: included), [chosen.id, since.id], info, removed, origin)
    }

    /// What an export `--since` carries: every node of `new` that is added or changed against
    /// `old` (content or metadata, as ``TreeDiff`` tells), with every folder above one, in `new`'s
    /// order; and every path of `old` that `new` lacks (a removed folder and everything in it).
    static func changedSince(old: [TreeNode], new: [TreeNode]) -> (included: [TreeNode], removed: [[UInt8]]) {
        var keep = Set<[UInt8]>()
        var removed: [[UInt8]] = []
        for e in TreeDiff.diff(old: old, new: new) {
            guard let n = e.new else {
                if let o = e.old { removed.append(o.pathBytes) }
                continue
            }
            keep.insert(n.pathBytes)
            var p = n.pathBytes
            while let slash = p.lastIndex(of: UInt8(ascii: "/")) {
                p = Array(p[..<slash])
                guard keep.insert(p).inserted else { break }
            }
        }
        return (new.filter { keep.contains($0.pathBytes) }, removed)
    }

    private func exportFromBackup(
        _ t: TenantRecord, output: String, by: String, pgBinDirectory: String,
        options: ExportOptions, binary: String,
        progress: ((_ files: Int64, _ bytes: Int64) -> Void)?
    ) throws -> ExportResult {
        let repo = try repository(for: t, create: false)
        let documents = try snapshotDocuments(t, repo: repo, options: options)
        // Retention keeps the snapshots being read.
        let pins = SnapshotPins(home: home)
        var unpins: [@Sendable () -> Void] = []
        defer { for u in unpins { u() } }
        for id in documents?.ids ?? [] { unpins.append(try pins.pin(tenant: t.id, snapshot: id.hex)) }

        var request = ExportRequest(
            tenant: try t.id, output: output, documents: documents?.source, databaseDSN: nil,
            pgBinDirectory: pgBinDirectory, sourceLabel: options.fromBackup ? "backup" : "live database, documents from backup",
            now: clock.now(), by: by)
        request.extraInfo = documents?.info ?? []
        request.removedPaths = documents?.removed
        request.documentsOrigin = documents?.origin
        var restoreDatabase = false
        if options.fromBackup { restoreDatabase = try t.pgDSN != nil || !baseBackups(repo).isEmpty }
        guard restoreDatabase else {
            if !options.fromBackup { request.databaseDSN = t.pgDSN }
            guard request.documents != nil || request.databaseDSN != nil else {
                throw CoreError.usage(
                    "tenant '\(t.name)' has neither document snapshots nor base backups to export",
                    hint: "tresor snapshots \(t.name)")
            }
            return try exportRecorded(request, options: options, progress: progress)
        }
        return try withRestoredDatabase(t, at: options.at, pgBinDirectory: pgBinDirectory, binary: binary) { dsn, point, baseBackup in
            request.databaseDSN = dsn
            request.databasePoint = point
            request.extraInfo.append(("Tresor-Database-Base-Backup", baseBackup))
            return try exportRecorded(request, options: options, progress: progress)
        }
    }

    /// Restores the tenant's database to `at` (nil: the latest point) into a scratch directory,
    /// runs it on a free loopback port until it promoted, and calls `body` with a DSN for the
    /// tenant's database there, the point it reached and the base backup's id. The server is
    /// stopped and the directory removed afterwards, whether `body` succeeded or not; when that
    /// cleanup fails the export fails too (and its archive is removed: nothing claims success
    /// while a copy of the data is left behind).
    private func withRestoredDatabase(
        _ t: TenantRecord, at: Date?, pgBinDirectory: String, binary: String,
        _ body: (String, DatabasePoint, String) throws -> ExportResult
    ) throws -> ExportResult {
        let scratch = DrillScratch(home: home, kind: "export")
        _ = try scratch.cleanLeftovers()
        let dir = try scratch.create(id: String(UUID().uuidString.lowercased().prefix(8)))
        let pgdata = dir.appendingPathComponent("pgdata").path
        var server: RecoveryServer?
        // The restored base backup stays pinned (kept by retention) until the copy is gone.
        var unpin: (@Sendable () -> Void)?
        defer { unpin?() }
        func cleanup() throws {
            var problems: [String] = []
            do { try server?.stop(mode: "immediate") } catch { problems.append("the scratch server did not stop: \(error)") }
            do {
                if try DrillScratch.stopServer(dataDirectory: pgdata) { problems.append("the scratch server had to be stopped by its pid") }
                try scratch.remove(dir)
            } catch {
                problems.append("\(error)")
            }
            // A server stopped by its pid is gone and its files removed: only a failure to do so is one.
            if let p = problems.first(where: { !$0.hasSuffix("stopped by its pid") }) {
                throw CoreError.failed(
                    "the export's scratch copy of tenant '\(t.name)' was not cleaned up: \(p)",
                    hint: "stop the server and remove \(dir.path) by hand; the next export from backup removes it too")
            }
        }
        let result: ExportResult
        do {
            let target: RecoveryTarget = at.map { .time($0) } ?? .latest
            let restored = try restorePostgres(
                tenant: t.id, pgdata: pgdata, target: target, timeline: nil, archive: false,
                run: false, binary: binary, keepPin: { unpin = $0 })
            try ScratchDatabase.allowLocalOnly(pgdata: pgdata, by: "tresor export")
            let s = try RecoveryServer(dataDirectory: pgdata, workDirectory: dir.appendingPathComponent("server").path, binDirectory: pgBinDirectory)
            server = s
            guard try s.startUntilPromoted(seconds: 7 * 86400) else {
                throw CoreError.failed(
                    "the database of tenant '\(t.name)' could not be recovered to \(restored.target): \(s.stopReason())",
                    hint: "tresor pg window \(t.name) shows what the archive holds")
            }
            // The tenant's database: the DSN's dbname, else libpq's default (the user's name).
            let database = t.pgDSN.flatMap { ScratchDatabase.option("dbname", of: $0) ?? ScratchDatabase.option("user", of: $0) } ?? "postgres"
            let (user, conn) = try ScratchDatabase.connectAsSuperuser(s, tenantDSN: t.pgDSN, database: database)
            let row = try conn.query(
                """
                SELECT pg_last_wal_replay_lsn()::text,
                       to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                """
            ).first
            let point = DatabasePoint(
                lsn: (row?.first ?? nil) ?? "unknown", time: (row.flatMap { $0.count > 1 ? $0[1] : nil }) ?? "no transaction replayed",
                target: restored.target)
            result = try body(ScratchDatabase.dsn(s, user: user, database: database), point, restored.snapshot)
        } catch {
            do { try cleanup() } catch let cleanupError {
                throw CoreError.failed("\(error); and \(cleanupError)")
            }
            throw error
        }
        do {
            try cleanup()
        } catch {
            // The archive was created by this call (link() refused existing names).
            unlink(result.archive)
            throw error
        }
        return result
    }

    /// `progress` hears the document files and bytes archived so far.
    private func exportRecorded(
        _ request: ExportRequest, options: ExportOptions,
        progress: ((_ files: Int64, _ bytes: Int64) -> Void)?
    ) throws -> ExportResult {
        var request = request
        request.progress = progress
        request.zstdLevel = policy.exports.zstdLevel
        var result = try Exporter.run(request)
        result.documentsSnapshot = request.extraInfo.first { $0.0 == "Tresor-Documents-Snapshot" }?.1
        result.sinceSnapshot = request.extraInfo.first { $0.0 == "Tresor-Documents-Since-Snapshot" }?.1
        result.removedPaths = request.removedPaths?.count
        result.recoveryTarget = request.databasePoint?.target
        var payload: [String: EvidenceValue] = [
            "by": .string(request.by),
            "source": .string(options.fromBackup ? "backup" : "live"),
            "format": .string(result.format.rawValue),
            "archive_bytes": .int(result.bytes),
            "archive_sha256": .string(result.sha256),
            "payload_files": .int(result.payloadFiles),
            "payload_bytes": .int(result.payloadBytes),
            "document_files": .int(result.documentFiles),
            "document_bytes": .int(result.documentBytes),
            "problems": .int(Int64(result.problems.count + result.nonUTF8Names.count)),
        ]
        if let v = result.documentsSnapshot { payload["documents_snapshot"] = .string(v) }
        if let v = result.sinceSnapshot { payload["since_snapshot"] = .string(v) }
        if let v = request.extraInfo.first(where: { $0.0 == "Tresor-Database-Base-Backup" })?.1 { payload["base_backup"] = .string(v) }
        if let n = result.removedPaths { payload["documents_removed"] = .int(Int64(n)) }
        if let v = result.recoveryTarget { payload["recovery_target"] = .string(v) }
        if let db = result.database {
            payload["database_lsn"] = .string(db.lsn)
            payload["database_tables"] = .int(Int64(db.tables.count))
            payload["database_rows"] = .int(db.tables.reduce(0) { $0 + $1.rows })
        }
        do {
            try recordEvidence(kind: .export, tenant: request.tenant, payload: payload)
        } catch {
            // The archive was just created by this call (link() refused existing names).
            unlink(result.archive)
            throw error
        }
        return result
    }
}

extension ExportResult: JobResult {}
