import ArgumentParser
import Foundation
import TresorCore
import TresorEngine
import TresorPostgres

/// The absolute path of this executable, for the commands PostgreSQL runs.
var tresorBinaryPath: String { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path }

struct PGCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pg", abstract: "PostgreSQL: WAL archiving, base backups, point-in-time restore.",
        subcommands: [
            Setup.self, WALPush.self, WALFetch.self, WALPrefetch.self, BaseBackupCommand.self,
            RestoreCommand.self, Window.self, Stream.self,
        ])

    struct Setup: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Prepare WAL access for the PostgreSQL OS user and print the settings the server needs.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Option(help: "The OS user PostgreSQL runs as (it runs archive_command and restore_command).") var osUser = "postgres"
        @Option(help: "S3 stores: an AWS-style credentials file for that user, limited to the tenant's WAL prefix.") var walCredentials: String?
        @Flag(help: "The tenant's cluster was re-created on purpose: accept the next WAL's system identifier (the old cluster's backups are kept).")
        var newCluster = false

        func run() throws {
            let r = try ctx.installation().setupPostgres(
                tenant: tenant, osUser: osUser, binary: tresorBinaryPath, walCredentials: walCredentials,
                newCluster: newCluster)
            ctx.emit(r) {
                var lines = ["# postgresql.conf (or ALTER SYSTEM SET ...) for tenant \(r.tenant):"]
                lines += r.postgresqlConf
                lines.append("")
                lines.append("# pg_hba.conf:")
                lines += r.pgHBA
                lines.append("")
                lines.append("# cluster: \(r.cluster)")
                lines.append("")
                lines.append("# replication slot:")
                lines.append(r.slot)
                lines.append("")
                if let scope = r.s3Scope {
                    lines.append("# the s3 key given with --wal-credentials must allow only: \(scope)")
                    lines.append("")
                }
                lines.append("# prepared for the postgresql os user:")
                lines += r.prepared.map { "#   \($0)" }
                if !r.todo.isEmpty {
                    lines.append("# still to do as root:")
                    lines += r.todo
                }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct WALPush: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wal-push",
            abstract: "archive_command: store one WAL file; exit 0 only once it is durably stored.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Argument(help: "The file (%p).") var path: String

        func run() throws {
            let r = try PostgresWALAccess.archiveCommand(
                home: ctx.home, configFile: ctx.configFile, tenant: tenant, path: path,
                clock: try ctx.clock(), environmentCredentials: ctx.s3Credentials, traffic: ctx.traffic)
            ctx.emit(r) { "" }
        }
    }

    struct WALFetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wal-fetch",
            abstract:
                "restore_command: write one WAL file to DEST; exit 1 when it is not archived, 128 when it cannot be read (PostgreSQL then stops instead of promoting early). Prefetches ahead."
        )
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Argument(help: "The WAL file name (%f).") var name: String
        @Argument(help: "Where to write it (%p).") var destination: String
        @Option(help: "The restore's own spool directory (r-…; pg restore writes it).") var spoolRun: String?

        func run() throws {
            try PostgresWALAccess.restoreCommand(
                home: ctx.home, configFile: ctx.configFile, tenant: tenant, name: name,
                destination: destination, clock: try ctx.clock(),
                environmentCredentials: ctx.s3Credentials, traffic: ctx.traffic, binary: tresorBinaryPath,
                spoolRun: spoolRun
            ) {
                FileHandle.standardError.write(Data(($0 + "\n").utf8))
            }
        }
    }

    struct WALPrefetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wal-prefetch", abstract: "Fetch the WAL segments after NAME into the spool (started by wal-fetch).",
            shouldDisplay: false)
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Argument var name: String
        @Flag(help: "Wait for a running prefetcher instead of leaving the work to it.") var wait = false
        @Option(help: "A restore's own spool directory (r-…) instead of the shared spool.") var spoolRun: String?
        @Flag(help: "With --spool-run: keep the spool filled until the recovery of --pgdata ends.") var follow = false
        @Option(help: "The restored data directory whose recovery --follow serves.") var pgdata: String?

        func run() throws {
            try PostgresWALAccess.prefetch(
                home: ctx.home, configFile: ctx.configFile, tenant: tenant, name: name, clock: try ctx.clock(),
                environmentCredentials: ctx.s3Credentials, traffic: ctx.traffic, wait: wait,
                run: spoolRun, follow: follow, pgdata: pgdata)
        }
    }

    struct BaseBackupCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "basebackup", abstract: "Take a base backup over the replication protocol.")
        @Argument(transform: TenantID.init) var tenant: TenantID

        func run() throws {
            let line = ProgressLine(ctx)
            let r = try ctx.installation().basebackupPostgres(tenant: tenant) { bytes, files, estimate in
                line.update(bytes: bytes, totalBytes: estimate, files: files)
            }
            line.end()
            ctx.emit(r, outcome: r.outcome) {
                "base backup \(r.snapshot.prefix(8)) of \(r.tenant): \(r.files) files, \(formatBytes(r.bytes)), stored \(formatBytes(r.newBytesStored)) new in \(String(format: "%.1f", r.seconds)) s\n  wal \(r.postgres.startLSN) .. \(r.postgres.endLSN) on timeline \(r.postgres.timeline) (\(r.postgres.startWAL) .. \(r.postgres.endWAL))"
                    + (r.unreadableBaseChunks.isEmpty
                        ? ""
                        : "\nproblem: \(r.unreadableBaseChunks.count) chunks of the previous base backup could not be read; the pages based on them were stored whole (run tresor check \(r.tenant))")
            }
        }
    }

    struct RestoreCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Restore a base backup into a new or empty data directory and configure recovery to a target.")
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Option(help: "The data directory to create (new or empty).") var pgdata: String
        @Option(help: "Recover up to this time (RFC 3339).") var targetTime: String?
        @Option(help: "Recover up to this LSN (X/X).") var targetLsn: String?
        @Flag(help: "Recover all archived WAL.") var latest = false
        @Option(help: "Timeline to follow: latest, or a number (default: the base backup's).") var timeline: String?
        @Flag(
            name: .customLong("run"),
            help: "Start the restored server on a free loopback port until it reached the target and promoted, then stop it; exit 1 if recovery stops first.")
        var runServer = false
        @Flag(
            help: "Keep the backup's archive_mode: once promoted, the restored server archives into the tenant's WAL (for a restore that replaces production).")
        var archive = false

        func run() throws {
            let chosen = [targetTime != nil, targetLsn != nil, latest].filter { $0 }.count
            guard chosen == 1 else {
                throw CoreError.usage("give exactly one of --target-time, --target-lsn, --latest", hint: "tresor pg window \(tenant) shows the window")
            }
            let target: RecoveryTarget
            if let t = targetTime {
                guard let d = TimeFormat.parse(t) else {
                    throw CoreError.usage("cannot read time '\(t)'", hint: "use RFC 3339, e.g. 2026-11-27T10:00:00.5Z")
                }
                target = .time(d)
            } else if let l = targetLsn {
                guard let v = LSN.parse(l) else { throw CoreError.usage("cannot read lsn '\(l)'", hint: "use PostgreSQL's X/X form, e.g. 0/3000060") }
                target = .lsn(v)
            } else {
                target = .latest
            }
            let r = try ctx.installation().restorePostgres(
                tenant: tenant, pgdata: pgdata, target: target, timeline: timeline, archive: archive,
                run: runServer, binary: tresorBinaryPath)
            ctx.emit(r, outcome: r.outcome) {
                "restored base backup \(r.snapshot.prefix(8)) (ended \(r.baseBackupEnd)) of \(r.tenant) to \(r.pgdata): \(r.files) files, \(formatBytes(r.bytes)) in \(String(format: "%.1f", r.seconds)) s\n  recovery configured to \(r.target)\(r.stopLSN.map { " (recovery_target_lsn \($0))" } ?? ""); start the server to replay the wal"
                    + r.notes.map { "\n  \($0)" }.joined()
            }
        }
    }

    struct Window: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Earliest and latest recoverable points, and WAL gaps.")
        @Argument(transform: TenantID.init) var tenant: TenantID

        func run() throws {
            let w = try ctx.installation().postgresWindow(tenant: tenant)
            ctx.emit(w) {
                var lines = [
                    "earliest: \(w.earliestTime ?? "none") (lsn \(w.earliestLSN ?? "-"))",
                    "latest:   \(w.latestTime ?? "none") (lsn \(w.latestLSN ?? "-"), timeline \(w.timeline.map(String.init) ?? "-"))",
                    "\(w.baseBackups) base backups, \(w.walFiles) wal files",
                ]
                lines += w.gaps.map { "gap: \($0)" }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Stream: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stream WAL over the replication protocol into the archive until stopped (SIGTERM/SIGINT).",
            discussion:
                "Stores received WAL at least every [postgres] stream_flush_interval, reconnects when the server goes away, and confirms to the server only WAL that is stored. Runs next to archive_command."
        )
        @Argument(transform: TenantID.init) var tenant: TenantID
        @Option(help: "Physical replication slot (default tresor_<tenant>; created when missing).") var slot: String?

        func run() throws {
            StopSignal.install()
            _ = try ctx.installation().streamPostgres(
                tenant: tenant, slot: slot,
                log: { event in
                    let record = StreamEventRecord(event)
                    ctx.emit(record) { record.human }
                    fflush(nil)
                }, shouldStop: { StopSignal.requested })
        }
    }
}

/// One line of `pg stream` output.
struct StreamEventRecord: Encodable {
    var event: String
    var time: String
    var timeline: UInt32?
    var start: String?
    var slot: String?
    var createdSlot: Bool?
    var systemID: String?
    var segment: String?
    var result: String?
    var reason: String?
    var retryInSeconds: Double?
    var stats: WALStreamer.Stats?

    init(_ e: WALStreamer.Event) {
        time = TimeFormat.string(Date(), fractional: true)
        switch e {
        case .connected(let systemID, let timeline, let start, let slot, let created):
            event = "connected"
            self.systemID = systemID
            self.timeline = timeline
            self.start = LSN.format(start)
            self.slot = slot
            createdSlot = created
        case .segment(let name, let result):
            event = "segment"
            segment = name
            self.result = result.rawValue
        case .conflict(let name):
            event = "conflict"
            segment = name
            result = "kept_archived_copy"
        case .disconnected(let reason, let retryIn):
            event = "disconnected"
            self.reason = reason
            retryInSeconds = retryIn
        case .stopped(let stats):
            event = "stopped"
            self.stats = stats
        }
    }

    var human: String {
        switch event {
        case "connected":
            return
                "\(time) streaming timeline \(timeline ?? 0) from \(start ?? "?") through slot \(slot ?? "?")\(createdSlot == true ? " (created)" : "") of system \(systemID ?? "?")"
        case "segment":
            return "\(time) stored \(segment ?? "?")\(result == "already_archived" ? " (already archived)" : "")"
        case "conflict":
            return "\(time) warning: \(segment ?? "?") is archived with different content; kept the archived copy"
        case "disconnected":
            return "\(time) disconnected: \(reason ?? "?"); reconnecting in \(Int(retryInSeconds ?? 0)) s"
        default:
            let s = stats
            return
                "\(time) stopped: stored up to \(s?.storedLSN ?? "?"), \(s?.segmentsStored ?? 0) segments stored, \(s?.segmentsAlreadyArchived ?? 0) already archived, \(s?.partialStores ?? 0) partial stores, \(formatBytes(s?.bytesReceived ?? 0)) received"
        }
    }
}
