import Foundation
import TresorCatalog
import TresorCore
import TresorEvidence
import TresorPostgres
import TresorRepository

#if canImport(Glibc)
import Glibc
#endif

/// What `tresor drill run` asks for.
public enum DrillTargetChoice: Sendable, Equatable {
    /// A random WAL position between the oldest base backup's end and the last whole archived
    /// record (always reachable: a random *time* may fall after the last commit, and PostgreSQL
    /// then stops with "recovery ended before configured recovery target was reached").
    case random
    case latest
    case time(Date)
}

/// What `tresor drill run` did: the evidence record plus where it went.
public struct DrillRunResult: Codable, Sendable, JobResult {
    public var tenant: String
    public var record: DrillRecord
    /// The evidence record's sequence number; nil when it could not be appended (then the drill
    /// fails with that error instead).
    public var evidenceSeq: Int64?
    /// The base backup and document snapshot the drill restored.
    public var baseBackup: String?
    public var documentSnapshot: String?
    /// Leftovers of earlier drills removed before this one.
    public var cleaned: DrillScratch.Cleaned
    /// The self-test this drill was followed by (every `drills.self_test_every`-th drill).
    public var selfTest: DrillSelfTestResult?
    public var outcome: Outcome
}

/// The seeded generator a drill picks its target and its document sample with (SplitMix64), so a
/// drill repeated with the recorded seed picks the same point and the same files.
struct DrillRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: Int64) { state = UInt64(bitPattern: seed) }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Installation {
    /// The version written into drill records.
    public static let tresorVersion = "tresor 0.1 (drill format 1)"

    /// `tresor drill clean`: removes what killed drills, and killed exports from backup, left
    /// behind (their scratch directories and servers).
    public func cleanDrills() throws -> DrillScratch.Cleaned {
        var cleaned = try DrillScratch(home: home).cleanLeftovers()
        let exports = try DrillScratch(home: home, kind: "export").cleanLeftovers()
        cleaned.directories += exports.directories
        cleaned.serversStopped += exports.serversStopped
        cleaned.inUse += exports.inUse
        return cleaned
    }

    /// `tresor drill run T`: restores the tenant's database to `target` into a scratch directory
    /// under the home, runs it on a free loopback port (never archiving), checks it, restores and
    /// verifies a sample of the latest document snapshot, records a `drill` evidence record (pass
    /// or fail) and removes every scratch file. Problems the drill finds are in the record and
    /// make the outcome `problemFound` (exit 3); only a failure to record is thrown.
    ///
    /// Every `drills.self_test_every`-th drill of the tenant (counted in the catalog's drill
    /// runs) is followed by a self-test (``runDrillSelfTest(tenant:seed:binary:binDirectory:damages:)``),
    /// whose result is part of this one's outcome.
    /// `progress` hears the drill's stage (`restore`, `recovery`, `documents`) and, while the
    /// base backup is restored, its bytes written and their total.
    public func runDrill(
        tenant id: TenantID, target choice: DrillTargetChoice, seed: Int64?, binary: String,
        binDirectory: String = RecoveryServer.defaultBinDirectory,
        progress: (@Sendable (_ stage: String, _ bytes: UInt64, _ total: UInt64?) -> Void)? = nil
    ) throws -> DrillRunResult {
        let name = id.rawValue
        let tenantRecord = try tenant(id)
        let cleaned = try DrillScratch(home: home).cleanLeftovers()
        // A drill that throws (its restore could not start, the evidence log could not be
        // written) is a failed run, never one left `running`.
        var result = try run(
            Job(.drill, tenant: id) { [self] in
                let done = try performDrill(
                    tenantRecord, choice, seed: seed, damage: nil, binary: binary, binDirectory: binDirectory,
                    progress: progress)
                let record = try done.record(selfTest: false)
                let appended = try recordDrill(tenant: id, record)
                return DrillRunResult(
                    tenant: name, record: record, evidenceSeq: appended.record.seq, baseBackup: done.baseBackup,
                    documentSnapshot: done.documentSnapshot, cleaned: cleaned,
                    outcome: record.result == .pass ? .ok : .problemFound)
            })
        let every = policy.drills.selfTestEvery
        if every > 0, try catalog.runs(tenant: name, kind: .drill, limit: Int(Int32.max)).count % every == 0 {
            let selfTest = try runDrillSelfTest(tenant: id, seed: nil, binary: binary, binDirectory: binDirectory)
            result.selfTest = selfTest
            if selfTest.outcome != .ok { result.outcome = .problemFound }
        }
        return result
    }

    /// One drill from the restore to the removal of its scratch files, not recorded anywhere:
    /// what `drill run` records, and each of a self-test's runs (`damage` applied to its copy).
    func performDrill(
        _ tenantRecord: TenantRecord, _ choice: DrillTargetChoice, seed: Int64?, damage: (any DrillDamage)?,
        binary: String, binDirectory: String,
        progress: (@Sendable (_ stage: String, _ bytes: UInt64, _ total: UInt64?) -> Void)? = nil
    ) throws -> PerformedDrill {
        let started = Date()
        let now = clock.now()
        let scratch = DrillScratch(home: home)
        let drillID = UUID().uuidString.lowercased()
        let dir = try scratch.create(id: String(drillID.prefix(8)))
        let deadline = started.addingTimeInterval(policy.drills.timeout.seconds)

        var d = DrillRun(
            installation: self, tenant: tenantRecord, dir: dir, drillID: drillID, started: started,
            deadline: deadline, binDirectory: binDirectory)
        d.damage = damage
        d.now = now
        if case .latest = choice { d.expectsHeartbeat = heartbeatOptedIn(tenantRecord) }
        d.progress = progress
        var seedUsed: Int64? = nil
        if choice == .random || tenantRecord.docRoots.isEmpty == false {
            seedUsed = seed ?? Int64(bitPattern: UInt64.random(in: 0...UInt64.max))
        }
        var rng = DrillRandom(seed: seedUsed ?? 0)
        var target = DrillRecord.Target(kind: .latest)
        var rpoMs: Int64? = nil
        var baseBackup: String? = nil
        var cleanupError: String? = nil
        var sample: DocumentSample? = nil
        do {
            let plan = try d.plan(choice, rng: &rng, now: now)
            target = plan.target
            rpoMs = plan.rpoMs
            baseBackup = try d.restoreDatabase(plan.recoveryTarget, binary: binary)
            // The document sample needs nothing of the database: it is restored and verified on a
            // thread of its own while pg_verifybackup, recovery and the database checks run (after
            // the base backup's restore, which already keeps every core busy and makes the RTO).
            sample = DocumentSample(d, rng: rng)
            d.damageRestored(plan, binary: binary)
            progress?("recovery", d.bytes, nil)
            d.timed { $0.verifyBackup() }
            d.recoverAndCheck(plan)
        } catch {
            d.fail("restore", error)
            d.checks[d.checks.count - 1].ms = d.restoreMs
        }
        d.finishUnrun()
        progress?("documents", d.bytes, nil)
        let docs: String?
        if let sample {
            let w0 = Date()
            docs = sample.join(into: &d)
            d.checksMs += DrillRun.ms(w0)
        } else {
            let c0 = Date()
            docs = d.timed { $0.checkDocuments(rng: &rng) }
            d.checksMs += DrillRun.ms(c0)
        }
        // Stop the scratch server and remove every scratch file, whatever happened above.
        do {
            try d.server?.stopImmediately()
        } catch {
            cleanupError = "the scratch server did not stop: \(error)"
        }
        do {
            if try DrillScratch.stopServer(dataDirectory: d.pgdata) { cleanupError = cleanupError ?? "the scratch server had to be stopped by its pid" }
            try scratch.remove(dir)
        } catch {
            cleanupError = (cleanupError.map { $0 + "; " } ?? "") + "\(error)"
        }
        d.unpin?()
        if let cleanupError { d.checks.append(.failed("cleanup", reason: String(cleanupError.prefix(DrillRecord.maxReasonBytes)))) }
        target.replayedCommit = d.replayedCommit.map(DrillRun.microsecondTime)
        target.nextCommit = d.nextCommit.map(DrillRun.microsecondTime)
        return PerformedDrill(
            drillID: drillID, seed: seedUsed, target: target, checks: d.checks, rtoMs: d.rtoMs, rpoMs: rpoMs,
            bytes: Int64(d.bytes), files: Int64(d.files),
            timings: .init(restoreMs: d.restoreMs, recoveryMs: d.recoveryMs, checksMs: d.checksMs),
            postgresVersion: d.postgresVersion, baseBackup: baseBackup, documentSnapshot: docs,
            damageApplied: d.damageApplied, damageError: d.damageError,
            heartbeat: d.heartbeat.map(DrillRun.microsecondTime), dataLossBoundMs: d.dataLossBoundMs)
    }
}

/// What one drill did, before it is recorded.
struct PerformedDrill {
    var drillID: String
    var seed: Int64?
    var target: DrillRecord.Target
    var checks: [DrillRecord.Check]
    var rtoMs: Int64?
    var rpoMs: Int64?
    var bytes: Int64
    var files: Int64
    var timings: DrillRecord.Timings
    var postgresVersion: String
    var baseBackup: String?
    var documentSnapshot: String?
    /// For a self-test's damaged run: whether a hook of the damage applied it, and the error of
    /// one that could not.
    var damageApplied: Bool
    var damageError: String?
    var heartbeat: String?
    var dataLossBoundMs: Int64?

    func record(selfTest: Bool) throws -> DrillRecord {
        try DrillRecord(
            drillID: drillID, seed: seed, target: target, checks: checks, rtoMs: rtoMs, rpoMs: rpoMs,
            bytesRestored: bytes, filesRestored: files, timings: timings, selfTest: selfTest,
            tresorVersion: Installation.tresorVersion, postgresVersion: postgresVersion,
            heartbeat: heartbeat, dataLossBoundMs: dataLossBoundMs)
    }
}

/// The state of one drill while it runs.
struct DrillRun {
    struct Plan {
        var target: DrillRecord.Target
        var recoveryTarget: RecoveryTarget
        var rpoMs: Int64?
    }

    let installation: Installation
    let tenant: TenantRecord
    let dir: URL
    let drillID: String
    let started: Date
    let deadline: Date
    let binDirectory: String
    var checks: [DrillRecord.Check] = []
    var server: RecoveryServer?
    var rtoMs: Int64?
    var bytes: UInt64 = 0
    var files = 0
    var restoreMs: Int64 = 0
    var recoveryMs: Int64 = 0
    var checksMs: Int64 = 0
    var postgresVersion = "unknown"
    /// The stop position `pg restore` wrote for a latest target.
    var stopLSN: UInt64?
    /// A self-test's damage for this copy (nil for a real drill), and what applying it did.
    var damage: (any DrillDamage)?
    var damageApplied = false
    var damageError: String?
    /// For a time target: the commit times read from the archived WAL around the stop.
    var replayedCommit: Date?
    var nextCommit: Date?
    var backupTimeline: UInt32?
    /// The drill's start on the installation's clock (the crash point of a `latest` drill).
    var now = Date.distantPast
    /// For a `latest` drill of a heartbeat tenant: the restored heartbeat and the bound it proves.
    var expectsHeartbeat = false
    var heartbeat: Date?
    var dataLossBoundMs: Int64?
    var progress: (@Sendable (String, UInt64, UInt64?) -> Void)?

    var pgdata: String { dir.appendingPathComponent("pgdata").path }

    /// Settings of the scratch server on top of the restored ones (the copy is thrown away, and
    /// never archives: `pg restore` wrote `archive_mode = off`).
    /// - `fsync = off`: a server started from a base backup first fsyncs every file of its data
    ///   directory, and recovery ends with a checkpoint that fsyncs every file it wrote. Nothing
    ///   of the scratch copy has to survive a crash of the host (``restoreSyncs``): a drill
    ///   interrupted that way is cleaned up and run again. Measured on `pgbench -s 60`: recovery 9.3 s with, 5.3 s without (both
    ///   under the same load). What the checks read is the same either way.
    /// - `autovacuum = off`: once promoted, autovacuum would vacuum the tables recovery changed,
    ///   competing with the checks for the cores and changing pages while they are read.
    /// - `full_page_writes = off`: the checks are the first to read most heap pages after
    ///   recovery, and each first read sets hint bits. With data checksums on, the first such
    ///   change of a page after a checkpoint (promotion requests one) logs a full-page image, so
    ///   the read-only checks would write about the whole heap into the scratch server's WAL
    ///   (measured on `pgbench -s 60`: Benchmarks/README.md, drill section). Nothing replays that
    ///   WAL. Replay itself is unaffected: the full-page images it needs are in the archived WAL
    ///   and are applied whatever this setting says.
    /// - `recovery_prefetch = off`: the restore has just written the copy into the page cache,
    ///   so the prefetcher's `posix_fadvise` calls only cost the startup process system time
    ///   (half of it on `pgbench -s 60`), and its look-ahead reads past the target: it asks
    ///   `restore_command` for the segment after the last one (absent), which closes the last
    ///   one, so the end of recovery fetches that again from the archive (its spooled copy was
    ///   consumed). Without the look-ahead neither call happens. Replay applies the same
    ///   records either way. Measured: recovery until promoted 0.1 to 0.25 s shorter
    ///   (Benchmarks/README.md, drill section, drill8).
    static let scratchSettings = "-c fsync=off -c autovacuum=off -c full_page_writes=off -c recovery_prefetch=off"

    /// Whether the drill's restore of the base backup syncs the file system (`syncfs`, twice) as
    /// `pg restore` does: no. The scratch copy is read back at once from the page cache and
    /// thrown away; a crash of the host leaves a scratch directory the next drill removes
    /// (``DrillScratch``), never a copy anyone starts again. `syncfs` also flushes whatever else
    /// is dirty on that file system. Measured on `pgbench -s 60`: the restore 0.49 to 0.64 s
    /// against 0.82 to 1.12 s (Benchmarks/README.md, drill section, drill8).
    static let restoreSyncs = false

    /// `shared_buffers` of the scratch server for `bytes` restored: room for the whole restored
    /// copy (a quarter more), at least PostgreSQL's default 128 MB, at most a quarter of the
    /// host's memory. Replay changes pages all over the largest tables; with the default 128 MB
    /// most of them are evicted (written and read again) before recovery ends. Measured on
    /// `pgbench -s 60` (905 MB): recovery about 0.5 s shorter with 1 or 2 GB
    /// (Benchmarks/README.md, drill section).
    static func sharedBuffers(bytes: UInt64, memory: UInt64 = ProcessInfo.processInfo.physicalMemory) -> String {
        let mb: UInt64 = 1 << 20
        let want = max(128, (bytes / mb) * 5 / 4 + 1)
        return "-c shared_buffers=\(min(want, max(128, memory / mb / 4)))MB"
    }

    /// Settings that end recovery at the target by a promotion instead of PostgreSQL's
    /// end-of-recovery checkpoint, for a data directory of PostgreSQL 12 to 15 (empty for any
    /// other, which then ends recovery as `pg restore` wrote). Recovery pauses at the target
    /// (`recovery_target_action = pause`, which needs `hot_standby`), and a pause at the end of
    /// recovery first looks for `promote_trigger_file`, created here before the server starts:
    /// found, recovery ends there as a promotion, with an end-of-recovery record and the
    /// checkpoint requested in the background. Without it, recovery ends with an immediate
    /// checkpoint the promotion waits for, which writes every buffer replay changed (60,000 on
    /// `pgbench -s 60`, 0.5 to 0.8 s; Benchmarks/README.md, drill section). The trigger is never
    /// looked at before the target: a recovery that is not a standby checks it only while paused
    /// (and while delaying replay, so `recovery_min_apply_delay` is 0), so replay stops exactly
    /// where it did; a recovery without a target never pauses and ends as before.
    /// A trigger file that cannot be created leaves the settings out: the drill is then only slower.
    static func promoteAtTarget(pgdata: String, workDirectory: String) -> String {
        // Unreadable: not a version known to have the setting (PostgreSQL 16 removed it).
        let version = (try? String(contentsOfFile: pgdata + "/PG_VERSION", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let major = version.flatMap({ Int($0) }), (12...15).contains(major) else { return "" }
        let trigger = workDirectory + "/promote"
        guard FileManager.default.createFile(atPath: trigger, contents: nil) else { return "" }
        return " -c hot_standby=on -c recovery_target_action=pause -c recovery_min_apply_delay=0 -c promote_trigger_file=\(trigger)"
    }

    /// The database checks, in order; those not reached are recorded as not run.
    static let databaseChecks = ["restore", "pg_verifybackup", "connect", "target_reached", "amcheck", "read_tables", "data_checksums"]

    init(installation: Installation, tenant: TenantRecord, dir: URL, drillID: String, started: Date, deadline: Date, binDirectory: String) {
        self.installation = installation
        self.tenant = tenant
        self.dir = dir
        self.drillID = drillID
        self.started = started
        self.deadline = deadline
        self.binDirectory = binDirectory
    }

    static func ms(_ from: Date, _ to: Date = Date()) -> Int64 { max(0, Int64((to.timeIntervalSince(from) * 1000).rounded())) }

    /// Runs `body` and gives every check it appended without a duration of its own the time
    /// `body` took (one check per step, or several decided at once).
    @discardableResult
    mutating func timed<R>(_ body: (inout DrillRun) -> R) -> R {
        let first = checks.count, t0 = Date()
        let r = body(&self)
        let took = DrillRun.ms(t0)
        for i in first..<checks.count where checks[i].ms == nil { checks[i].ms = took }
        return r
    }

    /// RFC 3339 UTC with microseconds, PostgreSQL's resolution (TimeFormat stops at milliseconds).
    static func microsecondTime(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var whole = t.rounded(.down)
        var micros = Int(((t - whole) * 1_000_000).rounded())
        if micros == 1_000_000 { whole += 1; micros = 0 }
        return String(TimeFormat.string(Date(timeIntervalSince1970: whole)).dropLast()) + "." + String(String(micros + 1_000_000).dropFirst()) + "Z"
    }

    /// The lines a check tool wrote to its output file `path`: counted for the record, never
    /// quoted (they name the cluster's files and relations). An output that cannot be read counts
    /// 0 lines and loses nothing: the tool's exit status alone decides the check.
    static func outputLines(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    static func reason(_ text: String) -> String {
        let t = text.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
        var out = t.isEmpty ? "no reason given" : t
        while out.utf8.count > DrillRecord.maxReasonBytes { out = String(out.dropLast()) }
        return out
    }

    mutating func fail(_ check: String, _ error: Error) {
        checks.append(.failed(check, reason: Self.reason("\(error)")))
    }

    /// Every database check not reached is recorded as not run, naming the first failure.
    mutating func finishUnrun() {
        let done = Set(checks.map(\.name))
        let why = checks.first { $0.status != .passed }.map { "not reached: \($0.name) did not pass" } ?? "not reached"
        for name in Self.databaseChecks where !done.contains(name) {
            checks.append(.notRun(name, reason: why))
        }
        if expectsHeartbeat && !done.contains("heartbeat") { checks.append(.notRun("heartbeat", reason: why)) }
    }

    // MARK: target

    mutating func plan(_ choice: DrillTargetChoice, rng: inout DrillRandom, now: Date) throws -> Plan {
        let repo = try installation.repository(for: tenant, create: false)
        let archive = try installation.walArchive(repo)
        let backups = try installation.baseBackups(repo)
        let window = RecoveryPlanner.window(backups: backups, wal: try archive.listWithHeaders())
        switch choice {
        case .time(let t):
            return Plan(target: .init(kind: .time, time: t), recoveryTarget: .time(t), rpoMs: nil)
        case .latest:
            let latest = window.latestTime.flatMap(TimeFormat.parse)
            return Plan(
                target: .init(kind: .latest, time: latest), recoveryTarget: .latest,
                rpoMs: latest.map { DrillRun.ms($0, now) })
        case .random:
            guard let low = window.earliestLSN.flatMap(LSN.parse) else {
                throw CoreError.failed("tenant '\(tenant.name)' has no base backup to drill", hint: "tresor pg basebackup \(tenant.name)")
            }
            let high = try RecoveryPlanner.latestRecordStart(window: window) { try archive.fetchForRecovery($0) } ?? low
            let lsn = high > low ? UInt64.random(in: low...high, using: &rng) : low
            return Plan(target: .init(kind: .random, lsn: LSN.format(lsn)), recoveryTarget: .lsn(lsn), rpoMs: nil)
        }
    }

    // MARK: database

    /// Restores the base backup and recovery settings into the scratch data directory; returns
    /// the base backup's snapshot id.
    /// Releases the pin on the restored base backup, held until the drill is over.
    var unpin: (@Sendable () -> Void)?
    /// The `restore_command` the restore wrote (a self-test's damage wraps it).
    var restoreCommand = ""

    mutating func restoreDatabase(_ target: RecoveryTarget, binary: String) throws -> String {
        let t0 = Date()
        defer { restoreMs = DrillRun.ms(t0) }
        var restoreProgress: (@Sendable (UInt64, UInt64) -> Void)?
        if let progress { restoreProgress = { written, total in progress("restore", written, total) } }
        var held: (@Sendable () -> Void)?
        let r = try installation.restorePostgres(
            tenant: tenant.id, pgdata: pgdata, target: target, timeline: nil,
            archive: false, run: false, binary: binary, sync: DrillRun.restoreSyncs,
            progress: restoreProgress, keepPin: { held = $0 })
        unpin = held
        restoreCommand = r.restoreCommand
        bytes += r.bytes
        files += r.files
        stopLSN = r.stopLSN.flatMap(LSN.parse)
        // The timeline recovery starts on (and, for a time target, replays: the restore follows
        // the base backup's timeline); the server renames backup_label once it starts.
        let label = (try? String(contentsOfFile: pgdata + "/backup_label", encoding: .utf8)) ?? ""  // no label: the time check says the timeline is unknown
        backupTimeline = label.split(separator: "\n").first { $0.hasPrefix("START TIMELINE:") }
            .flatMap { UInt32($0.dropFirst("START TIMELINE:".count).trimmingCharacters(in: .whitespaces)) }
        try ScratchDatabase.allowLocalOnly(pgdata: pgdata, by: "tresor drill \(drillID)")
        checks.append(.init(name: "restore", status: .passed, reason: nil, ms: DrillRun.ms(t0)))
        return r.snapshot
    }

    /// Applies a self-test's damage to the restored copy (nothing for a real drill).
    mutating func damageRestored(_ plan: Plan, binary: String) {
        guard let damage else { return }
        let lsn: UInt64?
        switch plan.recoveryTarget {
        case .lsn(let l): lsn = l
        case .latest: lsn = stopLSN
        case .time: lsn = nil
        }
        do {
            let site = DrillDamageSite(
                pgdata: pgdata, targetLSN: lsn,
                restoreCommand: restoreCommand)
            if try damage.damage(restored: site) { damageApplied = true }
        } catch {
            damageError = DrillRun.reason("\(error)")
        }
    }

    /// `pg_verifybackup` against the manifest the server sent with the base backup (restored as
    /// `backup_manifest`), before the server starts: every file the backup holds is there with
    /// its SHA-256. The WAL is not in the backup (`--no-parse-wal`: replay fetches it from the
    /// archive, and recovery checks it); the files a restore writes on purpose are ignored. One
    /// process per core, each on its share of the files (``VerifyBackupPlan``).
    mutating func verifyBackup() {
        let c0 = Date()
        defer { checksMs += DrillRun.ms(c0) }
        let tool = binDirectory + "/pg_verifybackup"
        guard FileManager.default.fileExists(atPath: pgdata + "/backup_manifest") else {
            checks.append(.notRun("pg_verifybackup", reason: "the base backup holds no backup_manifest (taken before tresor stored manifests)"))
            return
        }
        checks.append(
            DrillRun.runVerifyBackup(
                tool: tool, pgdata: pgdata, outputPrefix: dir.appendingPathComponent("verifybackup").path,
                cores: availableCores))
    }

    /// Starts the scratch server, waits for promotion, and runs the checks on it.
    mutating func recoverAndCheck(_ plan: Plan) {
        let t0 = Date()
        let server: RecoveryServer
        do {
            server = try RecoveryServer(dataDirectory: pgdata, workDirectory: dir.appendingPathComponent("server").path, binDirectory: binDirectory)
            self.server = server
        } catch {
            fail("connect", error)
            return
        }
        let promoted: Bool
        do {
            promoted = try server.startUntilPromoted(
                seconds: deadline.timeIntervalSinceNow,
                extraOptions: DrillRun.scratchSettings + " " + DrillRun.sharedBuffers(bytes: bytes)
                    + DrillRun.promoteAtTarget(pgdata: pgdata, workDirectory: server.workDirectory))
        } catch {
            fail("connect", error)
            return
        }
        recoveryMs = DrillRun.ms(t0)
        guard promoted else {
            if Date() >= deadline {
                checks.append(.notRun("connect", reason: "timeout: recovery did not end within drills.timeout (\(installation.policy.drills.timeout))"))
            } else {
                checks.append(.failed("connect", reason: DrillRun.reason("recovery stopped before the target: \(server.stopReason())")))
            }
            return
        }
        let c0 = Date()
        defer { checksMs += DrillRun.ms(c0) }
        let connected: (String, PGConnection)? = timed { d in
            do {
                let (user, conn) = try d.connectAsSuperuser(server, database: "postgres")
                _ = try conn.query("SELECT 1")
                d.rtoMs = DrillRun.ms(d.started)
                d.postgresVersion = try conn.query("SHOW server_version").first?.first??.description ?? "unknown"
                d.checks.append(.passed("connect"))
                return (user, conn)
            } catch {
                d.fail("connect", error)
                return nil
            }
        }
        guard let connected else { return }
        let (user, conn) = connected
        // pg_amcheck (its own process, one connection per core) and the table reads (threads and
        // connections of their own) start at once and run while the target and the heartbeat are
        // checked: none of them changes what another reads, and each check is recorded in its
        // usual place. pg_amcheck's index check with --heapallindexed is one backend scanning the
        // largest table alone; everything else fits beside it.
        let a0 = Date()
        let amcheck = startAmcheck(server, user: user)
        let reads = TableReads(server: server, user: user, conn: conn)
        timed { $0.checkTarget(plan, conn: conn, server: server) }
        timed { $0.checkHeartbeat(plan, server: server, user: user, now: $0.now) }
        finishAmcheck(amcheck, started: a0)
        recordTables(reads.join(), conn: conn)
    }

    func dsn(_ server: RecoveryServer, user: String, database: String) -> String {
        ScratchDatabase.dsn(server, user: user, database: database)
    }

    func connectAsSuperuser(_ server: RecoveryServer, database: String) throws -> (String, PGConnection) {
        try ScratchDatabase.connectAsSuperuser(server, tenantDSN: tenant.pgDSN, database: database)
    }

    /// Recovery stopped where it was asked to. For an LSN (random) or latest target: the last
    /// replayed position is at or past the target (`pg_last_wal_replay_lsn()`, which keeps the
    /// end of recovery after promotion). For a time target, read from the archived WAL
    /// (``WALCommits``): the last commit record before the replay's end is at or before the
    /// target, and the first commit record after it is after the target; both times go into the
    /// record.
    mutating func checkTarget(_ plan: Plan, conn: PGConnection, server: RecoveryServer) {
        do {
            let replayed = try conn.query("SELECT pg_last_wal_replay_lsn()").first?.first??.description
            let replayedLSN = replayed.flatMap(LSN.parse)
            switch plan.recoveryTarget {
            case .lsn(let want):
                guard let got = replayedLSN, got >= want else {
                    checks.append(.failed("target_reached", reason: "replay ended at \(replayed ?? "?"), before the target \(LSN.format(want))"))
                    return
                }
            case .latest:
                if let want = stopLSN {
                    guard let got = replayedLSN, got >= want else {
                        checks.append(
                            .failed("target_reached", reason: "replay ended at \(replayed ?? "?"), before the last archived record \(LSN.format(want))"))
                        return
                    }
                }
            case .time(let want):
                // Proven from the archived WAL, not from the server's log: the last commit replayed
                // is at or before the target, and the first commit after it is after the target.
                guard let end = replayedLSN, let timeline = backupTimeline else {
                    checks.append(.notRun("target_reached", reason: "the replay position or the base backup's timeline is unknown"))
                    return
                }
                let repo = try installation.repository(for: tenant, create: false)
                let archive = try installation.walArchive(repo)
                let around = try WALCommits.around(end, timeline: timeline) { name in
                    do {
                        return try archive.fetchForRecovery(name)
                    } catch let e as PostgresError where e.code == .notFound {
                        return nil  // the archive ends here: the walk stops and says what it found
                    }
                }
                replayedCommit = around.replayed?.time
                nextCommit = around.next?.time
                let wantText = TimeFormat.string(want, fractional: true)
                guard let last = around.replayed else {
                    checks.append(.notRun("target_reached", reason: "no replayed commit record found in the archived wal before \(LSN.format(end))"))
                    return
                }
                guard last.time <= want else {
                    checks.append(
                        .failed(
                            "target_reached",
                            reason:
                                "the last replayed commit (\(TimeFormat.string(last.time, fractional: true)) at \(LSN.format(last.lsn))) is after the target \(wantText)"
                        ))
                    return
                }
                guard let next = around.next else {
                    checks.append(.notRun("target_reached", reason: "no commit after the replayed one found in the archived wal: the stop is not proven"))
                    return
                }
                guard next.time > want else {
                    checks.append(
                        .failed(
                            "target_reached",
                            reason:
                                "a commit at \(TimeFormat.string(next.time, fractional: true)) (\(LSN.format(next.lsn))), at or before the target \(wantText), was not replayed"
                        ))
                    return
                }
            }
            checks.append(.passed("target_reached"))
        } catch {
            fail("target_reached", error)
        }
    }

    /// A started `pg_amcheck`, or why it could not start.
    enum AmcheckRun {
        case running(pid: pid_t, output: String)
        case notRun(String)
    }

    /// Starts `pg_amcheck --heapallindexed` over every database (installing the amcheck
    /// extension in the scratch copy where it is missing), one connection per core: every table
    /// (heap structure and TOAST) and every B-tree index, each index also against every heap
    /// tuple it must hold. ``finishAmcheck(_:started:)`` waits for it and records the result.
    func startAmcheck(_ server: RecoveryServer, user: String) -> AmcheckRun {
        let tool = binDirectory + "/pg_amcheck"
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            return .notRun("\(tool) is not installed (postgresql-contrib)")
        }
        let out = dir.appendingPathComponent("amcheck.out").path
        do {
            let pid = try Spawn.start(
                tool,
                [
                    "-h", server.socketDirectory, "-p", String(server.port), "-U", user, "--all",
                    "--install-missing", "--heapallindexed", "--no-password", "--jobs", String(availableCores),
                ],
                stdout: out, stderr: out)
            return .running(pid: pid, output: out)
        } catch {
            return .notRun(DrillRun.reason("pg_amcheck could not run: \(error)"))
        }
    }

    /// Waits for ``startAmcheck(_:user:)``'s run and records the `amcheck` check with the time
    /// since `started`.
    mutating func finishAmcheck(_ run: AmcheckRun, started: Date) {
        switch run {
        case .notRun(let why):
            checks.append(.notRun("amcheck", reason: why))
        case .running(let pid, let out):
            let status = Spawn.wait(pid)
            let lines = DrillRun.outputLines(out)
            if status == 0 {
                checks.append(.passed("amcheck"))
            } else if status == 2 {
                // Output lines name relations: counted, never quoted into the record.
                checks.append(.failed("amcheck", reason: "pg_amcheck found corruption (\(lines) lines of findings)"))
            } else {
                checks.append(.failed("amcheck", reason: "pg_amcheck exited \(status) (\(lines) lines of output)"))
            }
        }
        checks[checks.count - 1].ms = DrillRun.ms(started)
    }

    /// Records what ``TableReads`` found (`read_tables`), then `data_checksums`: no data checksum
    /// failure was counted. Every page the table reads and pg_amcheck brought in from disk had its
    /// checksum verified on the way, so this check needs no read of its own; it runs after both.
    mutating func recordTables(_ reads: TableReads.Found, conn: PGConnection) {
        if let error = reads.error {
            checks.append(.init(name: "read_tables", status: .failed, reason: DrillRun.reason("\(error)"), ms: reads.ms))
            checks.append(.notRun("data_checksums", reason: "not reached: read_tables did not pass"))
            return
        }
        if reads.failedDatabases.isEmpty {
            checks.append(.init(name: "read_tables", status: .passed, reason: nil, ms: reads.ms))
        } else {
            let which = reads.failedDatabases.sorted().map { "database #\($0 + 1)" }.joined(separator: ", ")
            checks.append(
                .init(
                    name: "read_tables", status: .failed,
                    reason: DrillRun.reason("\(reads.failedTables) of \(reads.tables) tables failed to read (in \(which))"), ms: reads.ms))
        }
        timed { d in
            do {
                let on = try conn.query("SHOW data_checksums").first?.first ?? nil
                guard on == "on" else {
                    d.checks.append(.notRun("data_checksums", reason: "data checksums are off in this cluster (initdb --data-checksums)"))
                    return
                }
                let n = try conn.query("SELECT coalesce(sum(checksum_failures), 0) FROM pg_stat_database").first?.first ?? nil
                if n == "0" {
                    d.checks.append(.passed("data_checksums"))
                } else {
                    d.checks.append(.failed("data_checksums", reason: "\(n ?? "?") data checksum failures while reading"))
                }
            } catch {
                d.fail("data_checksums", error)
            }
        }
    }
}
