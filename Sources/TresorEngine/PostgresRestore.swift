import Foundation
import TresorCatalog
import TresorCore
import TresorDocuments
import TresorPostgres
import TresorRepository
import TresorStore

#if canImport(Glibc)
import Glibc
#endif

/// What `tresor pg restore` did.
public struct PostgresRestoreResult: Codable, Sendable, JobResult {
    public var tenant: String
    public var snapshot: String
    public var baseBackupEnd: String
    public var pgdata: String
    public var target: String
    /// The `recovery_target_lsn` written for `--latest` (the last archived record), if any.
    public var stopLSN: String?
    /// Whether the restored server archives (`--archive`) into the tenant's WAL.
    public var archiveMode: Bool
    /// The `restore_command` written (with the restore's own spool directory).
    public var restoreCommand: String
    /// What the operator must know about the recovery settings written.
    public var notes: [String]
    public var files: Int
    public var bytes: UInt64
    public var seconds: Double
    public var outcome: Outcome
}

/// `tresor pg restore`.
extension Installation {
    /// `tresor pg restore T --pgdata DIR (--target-time | --target-lsn | --latest)`: restores the
    /// newest base backup that ends before the target into a new or empty DIR and configures
    /// recovery (recovery.signal, restore_command through wal-fetch, the target, promote).
    /// Starting the server is left to the operator (or the drill).
    /// `timeline`: nil follows the chosen base backup's timeline; `latest` or a number as given.
    /// `archive`: false (the default) writes `archive_mode = off`: a restored server must not
    /// push its new timeline into the production tenant's WAL.
    ///
    /// Before anything is written it checks that the WAL from the chosen base backup to the
    /// target has no gap (refused with the gap named), and for `--latest` it writes the last
    /// archived record's LSN as the target, so a replay that falls short fails instead of
    /// promoting early.
    /// `run`: start the restored server (``RecoveryServer``: a free loopback port, as the data
    /// directory's owner) until recovery reached the target and it promoted, then stop it; a
    /// recovery that stops with an error fails the restore, with the server log's last FATAL line.
    /// `progress` hears the bytes of the base backup written and their total, about once a second.
    /// The chosen base backup is pinned while the restore runs, so retention keeps it and the WAL
    /// from its start; `keepPin`, when given, receives the pin's release after a successful restore
    /// instead (a drill or an export holds it through recovery and its checks).
    public func restorePostgres(
        tenant id: TenantID, pgdata: String, target: RecoveryTarget, timeline: String?, archive archiving: Bool = false,
        run runServer: Bool = false, binary: String, sync: Bool = true,
        progress: (@Sendable (_ written: UInt64, _ total: UInt64) -> Void)? = nil,
        keepPin: ((@escaping @Sendable () -> Void) -> Void)? = nil
    ) throws -> PostgresRestoreResult {
        if let t = timeline, t != "latest", UInt32(t) == nil {
            throw CoreError.usage("--timeline must be latest or a timeline number, not '\(t)'")
        }
        let tenant = try self.tenant(id)
        // Recorded from here on: a restore that fails is a failed run in the catalog.
        return try run(
            Job(.postgresRestore, tenant: id) { [self] in
                try restorePostgres(
                    tenant, pgdata: pgdata, target: target, timeline: timeline, archive: archiving,
                    run: runServer, binary: binary, sync: sync, progress: progress, keepPin: keepPin)
            })
    }

    private func restorePostgres(
        _ tenant: TenantRecord, pgdata: String, target: RecoveryTarget, timeline: String?, archive archiving: Bool,
        run runServer: Bool, binary: String, sync: Bool,
        progress: (@Sendable (UInt64, UInt64) -> Void)?,
        keepPin: ((@escaping @Sendable () -> Void) -> Void)?
    ) throws -> PostgresRestoreResult {
        let name = tenant.name
        let wallStart = Date()
        let repo = try repository(for: tenant, create: false)
        let archive = try walArchive(repo)
        let backups = try baseBackups(repo)
        let wal = try archive.listWithHeaders()
        let window = RecoveryPlanner.window(backups: backups, wal: wal)
        let chosen = try RecoveryPlanner.choose(target: target, backups: backups, window: window, tenant: name)
        // Retention keeps a pinned base backup and the WAL from its start (RetentionPlan).
        let unpin = try SnapshotPins(home: home).pin(tenant: tenant.id, snapshot: chosen.id.hex)
        var pinHandedOver = false
        defer { if !pinHandedOver { unpin() } }
        let followsBackup = timeline == nil || timeline == String(chosen.info.timeline)
        var notes: [String] = []
        // The WAL the replay needs, on the backup's timeline: up to the target's segment.
        var stopLSN: UInt64? = nil
        if followsBackup {
            let through: WALName?
            switch target {
            case .lsn(let l): through = WALName(timeline: chosen.info.timeline, segment: l / WALName.segmentSize)
            case .latest:
                through = window.latestLSN.flatMap(LSN.parse).map { WALName(timeline: chosen.info.timeline, segment: (max($0, 1) - 1) / WALName.segmentSize) }
            case .time(let t):
                // The first segment stored at or after the target time holds (or follows) it.
                through = wal.filter {
                    $0.name.timeline == chosen.info.timeline && ($0.name.kind == .segment || $0.name.kind == .streaming) && $0.pushedAt >= t
                }
                .map { $0.name.with(kind: .segment) }.min()
            }
            if let through, let gap = RecoveryPlanner.missingWAL(from: chosen, through: through, wal: wal) {
                throw CoreError.failed(
                    "wal \(gap.first)..\(gap.last) of tenant '\(name)' is missing between base backup \(chosen.id.short) (\(chosen.info.startWAL)) and the target: recovery would stop at the gap",
                    hint: "choose a target before \(gap.first) or after a base backup taken after the gap (tresor pg window \(name))")
            }
            if case .latest = target {
                stopLSN = try RecoveryPlanner.latestRecordStart(window: window) { try archive.fetchForRecovery($0) }
                if stopLSN == nil { notes.append("no recovery_target_lsn: no whole wal record found near the latest point \(window.latestLSN ?? "?")") }
            }
        } else if case .latest = target {
            notes.append("no recovery_target_lsn: following timeline \(timeline ?? "?"), replay ends where its archived wal ends")
        }
        if let s = stopLSN, s < chosen.endLSN {
            notes.append("no recovery_target_lsn: the archive holds no wal after the base backup's end \(chosen.info.endLSN)")
            stopLSN = nil
        }
        let index = try repo.loadIndex()
        let manifest = try repo.loadSnapshot(chosen.id)
        let nodes = try repo.loadTree(manifest, index: index)
        let top = Array("pgdata".utf8), prefix = Array("pgdata/".utf8)
        let root = nodes.first { $0.pathBytes == top }
        let inside = nodes.compactMap { n -> TreeNode? in
            guard n.pathBytes.starts(with: prefix) else { return nil }
            var c = n
            c.pathBytes = Array(n.pathBytes.dropFirst(prefix.count))
            return c
        }
        let absolute = URL(fileURLWithPath: pgdata).standardizedFileURL.path
        // This restore's own spool directory: only its prefetchers write there, from this
        // tenant's archive, so the server never takes a segment another restore left.
        let run = WALSpool.newRunName()
        let prefetcher =
            followsBackup ? startSpoolPrefetch(binary: binary, tenant: name, from: chosen.info.startWAL, run: run, pgdata: absolute, notes: &notes) : nil
        let runDirectory = WALSpool.runDirectory(PostgresAccess.spool(home, try tenant.id).path, run: run)
        var prefetcherHandedOver = false
        defer {
            // A restore that failed leaves no prefetcher waiting for a recovery that never comes.
            if let pid = prefetcher, !prefetcherHandedOver {
                kill(pid, SIGTERM)
                _ = Spawn.wait(pid)
                WALSpool.emptyAndRemove(runDirectory)
            }
        }
        let report = try TreeRestorer(repository: repo, index: index, sync: sync, progress: progress).restore(nodes: inside, to: absolute)
        guard report.failed.isEmpty else {
            throw CoreError.failed(
                "\(report.failed.count) files of base backup \(chosen.id.short) could not be restored, e.g. \(report.failed.keys.sorted().first!)",
                hint: "tresor check \(name) --read-data")
        }
        let restoreCommand = spooledRestoreCommand(binary: binary, tenant: try tenant.id, run: run)
        let settings = RecoveryPlanner.recoverySettings(
            restoreCommand: restoreCommand,
            target: target, timeline: timeline ?? String(chosen.info.timeline),
            latestRecord: stopLSN, archive: archiving)
        try RecoveryDirectory.prepare(absolute, settings: settings, owner: getuid() == 0 ? root.map { ($0.uid, $0.gid) } : nil)
        notes.append(
            archiving
                ? "archive_mode kept (--archive): once promoted, the server archives into tenant '\(name)'"
                : "archive_mode = off: the restored server does not archive (--archive to let it archive into tenant '\(name)')")
        if runServer {
            try runUntilPromoted(absolute, tenant: name)
            notes.append("recovered to the target and promoted (the server was stopped again)")
        }
        if let pid = prefetcher {
            reapPrefetcher(pid, notes: &notes)
            prefetcherHandedOver = true
        }
        let targetText: String
        switch target {
        case .time(let t): targetText = TimeFormat.string(t, fractional: true)
        case .lsn(let l): targetText = LSN.format(l)
        case .latest: targetText = "latest"
        }
        let result = PostgresRestoreResult(
            tenant: name, snapshot: chosen.id.hex, baseBackupEnd: chosen.info.endTime, pgdata: absolute,
            target: targetText, stopLSN: stopLSN.map(LSN.format), archiveMode: archiving, restoreCommand: restoreCommand, notes: notes,
            files: report.files, bytes: report.bytes,
            seconds: Date().timeIntervalSince(wallStart), outcome: .ok)
        if let keepPin {
            keepPin(unpin)
            pinHandedOver = true
        }
        return result
    }

    /// The `restore_command` of a restore with spool directory `run`: the shell renames a
    /// spooled segment into place, else `tresor pg wal-fetch … --spool-run RUN`
    /// (``WALSpool/fastRestoreCommand(runDirectory:slowCommand:)``).
    func spooledRestoreCommand(binary: String, tenant id: TenantID, run: String) -> String {
        WALSpool.fastRestoreCommand(
            runDirectory: WALSpool.runDirectory(PostgresAccess.spool(home, id).path, run: run),
            slowCommand: walCommand(binary: binary, "wal-fetch", tenant: id, "--spool-run", run, "%f", "%p"))
    }

    /// Starts the restore's prefetcher (`pg wal-prefetch … --spool-run RUN --follow --pgdata DIR`) from
    /// `startWAL` (the chosen base backup's): it fills the restore's spool directory while the
    /// files are restored and keeps it `wal_prefetch_depth` segments ahead of the server until
    /// the recovery of `pgdata` ends. A child process in its own session, because run as root it
    /// becomes the spool's owner (the PostgreSQL user), as wal-fetch's own prefetcher does. Nil
    /// (with a note) when it cannot start: the server then fetches the segments itself.
    private func startSpoolPrefetch(
        binary: String, tenant name: String, from startWAL: String, run: String, pgdata: String, notes: inout [String]
    ) -> pid_t? {
        guard policy.postgres.walPrefetchDepth > 0 else { return nil }
        guard let first = WALName(startWAL), first.kind == .segment, first.segment > 0 else { return nil }
        var args = ["--home", home.root.path]
        if let configFile { args += ["--config", configFile.path] }
        args += [
            "pg", "wal-prefetch", name, WALName(timeline: first.timeline, segment: first.segment - 1).description,
            "--spool-run", run, "--follow", "--pgdata", pgdata,
        ]
        do {
            return try Spawn.start(binary, args, newSession: true)
        } catch {
            notes.append("cannot prefetch the first wal segments into the spool (\(error)): the server fetches them itself, more slowly")
            return nil
        }
    }

    /// Notes a prefetcher that already failed; one still running is waited for on a thread of its
    /// own (it ends with the recovery), so it never lingers as a zombie in a long-lived process.
    private func reapPrefetcher(_ pid: pid_t, notes: inout [String]) {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            if code != 0 {
                notes.append(
                    "the wal prefetcher failed (tresor pg wal-prefetch exited \(code)): the server fetches the segments itself, more slowly")
            }
            return
        }
        Thread.detachNewThread { _ = Spawn.wait(pid) }
    }

    /// Runs the restored data directory until it is promoted; throws with the log's last FATAL
    /// line when recovery stops first. The run's log stays in `<pgdata>.tresor-run-*/sock` when
    /// it fails.
    private func runUntilPromoted(_ pgdata: String, tenant name: String) throws {
        let work = pgdata + ".tresor-run-\(UUID().uuidString.prefix(8))"
        let server = try RecoveryServer(dataDirectory: pgdata, workDirectory: work)
        // No time limit of its own: recovery ends, or the server stops with an error (restore_command
        // gives up after [postgres] wal_fetch_retry).
        guard try server.startUntilPromoted(seconds: 7 * 86400) else {
            try server.stop(mode: "immediate")
            throw CoreError.failed(
                "recovery of tenant '\(name)' in \(pgdata) stopped before the target: \(server.stopReason())",
                hint: "the server log is \(server.logPath); tresor pg window \(name) shows what the archive holds")
        }
        try server.stop()
        try FileManager.default.removeItem(atPath: work)
    }
}
