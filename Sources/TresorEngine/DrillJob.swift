#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TresorCatalog
import TresorCore
import TresorEvidence
import TresorPostgres
import TresorRepository

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
public struct DrillRunResult: Codable, Sendable {
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

    /// `tresor drill clean`: removes what killed drills left behind.
    public func cleanDrills() throws -> DrillScratch.Cleaned {
        try DrillScratch(home: home).cleanLeftovers()
    }

    /// `tresor drill run T`: restores the tenant's database to `target` into a scratch directory
    /// under the home, runs it on a free loopback port (never archiving), checks it, restores and
    /// verifies a sample of the latest document snapshot, records a `drill` evidence record (pass
    /// or fail) and removes every scratch file. Problems the drill finds are in the record and
    /// make the outcome `problemFound` (exit 3); only a failure to record is thrown.
    public func runDrill(tenant name: String, target choice: DrillTargetChoice, seed: Int64?, binary: String,
                         binDirectory: String = RecoveryServer.defaultBinDirectory) throws -> DrillRunResult {
        let tenantRecord = try tenant(name)
        let started = Date()
        let now = clock.now()
        let scratch = DrillScratch(home: home)
        let cleaned = try scratch.cleanLeftovers()
        let drillID = UUID().uuidString.lowercased()
        let dir = try scratch.create(id: String(drillID.prefix(8)))
        let run = try catalog.startRun(kind: .drill, tenant: name, at: now)
        let deadline = started.addingTimeInterval(policy.drills.timeout.seconds)

        var d = DrillRun(installation: self, tenant: tenantRecord, dir: dir, drillID: drillID, started: started,
                         deadline: deadline, binDirectory: binDirectory)
        var seedUsed: Int64? = nil
        if choice == .random || tenantRecord.docRoots.isEmpty == false {
            seedUsed = seed ?? Int64(bitPattern: UInt64.random(in: 0...UInt64.max))
        }
        var rng = DrillRandom(seed: seedUsed ?? 0)
        var target = DrillRecord.Target(kind: .latest)
        var rpoMs: Int64? = nil
        var baseBackup: String? = nil
        var cleanupError: String? = nil
        do {
            let plan = try d.plan(choice, rng: &rng, now: now)
            target = plan.target
            rpoMs = plan.rpoMs
            baseBackup = try d.restoreDatabase(plan.recoveryTarget, binary: binary)
            d.verifyBackup()
            d.recoverAndCheck(plan)
        } catch {
            d.fail("restore", error)
        }
        d.finishUnrun()
        let docs = d.checkDocuments(rng: &rng)
        // Stop the scratch server and remove every scratch file, whatever happened above.
        do {
            try d.server?.stop(mode: "immediate")
        } catch {
            cleanupError = "the scratch server did not stop: \(error)"
        }
        do {
            if try DrillScratch.stopServer(dataDirectory: d.pgdata) { cleanupError = cleanupError ?? "the scratch server had to be stopped by its pid" }
            try scratch.remove(dir)
        } catch {
            cleanupError = (cleanupError.map { $0 + "; " } ?? "") + "\(error)"
        }
        if let cleanupError { d.checks.append(.failed("cleanup", reason: String(cleanupError.prefix(DrillRecord.maxReasonBytes)))) }

        let record = try DrillRecord(
            drillID: drillID, seed: seedUsed, target: target, checks: d.checks, rtoMs: d.rtoMs, rpoMs: rpoMs,
            bytesRestored: Int64(d.bytes), filesRestored: Int64(d.files),
            timings: .init(restoreMs: d.restoreMs, recoveryMs: d.recoveryMs, checksMs: d.checksMs),
            selfTest: false, tresorVersion: Self.tresorVersion, postgresVersion: d.postgresVersion)
        let appended = try recordDrill(tenant: name, record)
        let result = DrillRunResult(tenant: name, record: record, evidenceSeq: appended.record.seq, baseBackup: baseBackup,
                                    documentSnapshot: docs, cleaned: cleaned,
                                    outcome: record.result == .pass ? .ok : .problemFound)
        try catalog.finishRun(id: run, at: clock.now(), status: RunStatus(result.outcome), detail: json(result))
        return result
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

    var pgdata: String { dir.appendingPathComponent("pgdata").path }

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
            return Plan(target: .init(kind: .latest, time: latest), recoveryTarget: .latest,
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
    mutating func restoreDatabase(_ target: RecoveryTarget, binary: String) throws -> String {
        let t0 = Date()
        defer { restoreMs = DrillRun.ms(t0) }
        let r = try installation.restorePostgres(tenant: tenant.name, pgdata: pgdata, target: target, timeline: nil,
                                                 archive: false, run: false, binary: binary)
        bytes += r.bytes
        files += r.files
        stopLSN = r.stopLSN.flatMap(LSN.parse)
        // The scratch copy's own access rule: only its unix socket, in a directory only the
        // server's user and root reach, without a password. The production pg_hba.conf (which
        // Tresor cannot assume to let it in) stays in the backup, untouched.
        let hba = pgdata + "/pg_hba.conf"
        var st = stat()
        stat(pgdata, &st)
        try "# written by tresor drill \(drillID): scratch copy, unix socket only\nlocal all all trust\n"
            .write(toFile: hba, atomically: false, encoding: .utf8)
        if getuid() == 0 { chown(hba, st.st_uid, st.st_gid) }
        checks.append(.passed("restore"))
        return r.snapshot
    }

    /// `pg_verifybackup` against the manifest the server sent with the base backup (restored as
    /// `backup_manifest`), before the server starts: every file the backup holds is there with
    /// its SHA-256. The WAL is not in the backup (`--no-parse-wal`: replay fetches it from the
    /// archive, and recovery checks it); the files a restore writes on purpose are ignored.
    mutating func verifyBackup() {
        let c0 = Date()
        defer { checksMs += DrillRun.ms(c0) }
        let tool = binDirectory + "/pg_verifybackup"
        guard FileManager.default.fileExists(atPath: pgdata + "/backup_manifest") else {
            checks.append(.notRun("pg_verifybackup", reason: "the base backup holds no backup_manifest (taken before tresor stored manifests)"))
            return
        }
        let out = dir.appendingPathComponent("verifybackup.out").path
        do {
            let status = Spawn.wait(try Spawn.start(tool, ["--no-parse-wal", "--quiet", "--ignore", "postgresql.auto.conf", "--ignore", "recovery.signal",
                                                           "--ignore", "pg_hba.conf", pgdata], stdout: out, stderr: out))
            let lines = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").count // unreadable output: the status still decides
            if status == 0 {
                checks.append(.passed("pg_verifybackup"))
            } else {
                // Its findings name files of the cluster: counted, not quoted.
                checks.append(.failed("pg_verifybackup", reason: "pg_verifybackup exited \(status) with \(lines) lines of findings"))
            }
        } catch {
            checks.append(.notRun("pg_verifybackup", reason: DrillRun.reason("pg_verifybackup could not run: \(error)")))
        }
    }

    /// Starts the scratch server, waits for promotion, and runs the checks on it.
    mutating func recoverAndCheck(_ plan: Plan) {
        let t0 = Date()
        let server: RecoveryServer
        do {
            server = try RecoveryServer(dataDirectory: pgdata, workDirectory: dir.appendingPathComponent("server").path, binDirectory: binDirectory)
            self.server = server
            // A server that stops in recovery fails its start; waitForPromotion tells.
            do { try server.start(seconds: max(1, Int(deadline.timeIntervalSinceNow))) } catch {}
        } catch {
            fail("connect", error)
            return
        }
        let left = deadline.timeIntervalSinceNow
        let promoted: Bool
        do {
            promoted = try left > 0 && server.waitForPromotion(seconds: left)
        } catch {
            fail("connect", error)
            return
        }
        recoveryMs = DrillRun.ms(t0)
        guard promoted else {
            let log = (try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? "" // missing log: the tail below says nothing, the check still fails
            let fatal = log.split(separator: "\n").last { $0.contains("FATAL:") }.map(String.init)
            if Date() >= deadline {
                checks.append(.notRun("connect", reason: "timeout: recovery did not end within drills.timeout (\(installation.policy.drills.timeout))"))
            } else {
                checks.append(.failed("connect", reason: DrillRun.reason("recovery stopped before the target: \(fatal ?? server.logTail(2))")))
            }
            return
        }
        let c0 = Date()
        defer { checksMs += DrillRun.ms(c0) }
        let user: String
        let conn: PGConnection
        do {
            (user, conn) = try connectAsSuperuser(server, database: "postgres")
            _ = try conn.query("SELECT 1")
            rtoMs = DrillRun.ms(started)
            postgresVersion = try conn.query("SHOW server_version").first?.first??.description ?? "unknown"
            checks.append(.passed("connect"))
        } catch {
            fail("connect", error)
            return
        }
        checkTarget(plan, conn: conn, server: server)
        checkAmcheck(server, user: user)
        checkTables(server, user: user, conn: conn)
    }

    func dsn(_ server: RecoveryServer, user: String, database: String) -> String {
        "host=\(ConnInfo.quote(server.socketDirectory)) port=\(server.port) user=\(ConnInfo.quote(user)) dbname=\(ConnInfo.quote(database)) connect_timeout=30"
    }

    /// Connects as the cluster's bootstrap superuser (role oid 10): tried as `postgres`, then as
    /// the tenant's backup role, whose session finds the bootstrap role's name.
    func connectAsSuperuser(_ server: RecoveryServer, database: String) throws -> (String, PGConnection) {
        var candidates = ["postgres"]
        if let dsn = tenant.pgDSN, let info = try? ConnInfo(dsn), // an unreadable DSN leaves "postgres" to try
           let u = info.options.last(where: { $0.keyword == "user" })?.value, u != "postgres" { candidates.append(u) }
        var lastError: Error = CoreError.failed("no role to connect as")
        for u in candidates {
            do {
                let c = try PGConnection(dsn: dsn(server, user: u, database: database))
                let boot = try c.query("SELECT rolname FROM pg_roles WHERE oid = 10").first?.first ?? nil
                guard let boot, boot != u else { return (u, c) }
                return (boot, try PGConnection(dsn: dsn(server, user: boot, database: database)))
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Recovery stopped where it was asked to. For an LSN (random) or latest target: the last
    /// replayed position is at or past the target (`pg_last_wal_replay_lsn()`, which keeps the
    /// end of recovery after promotion). For a time target: the server log's "last completed
    /// transaction was at log time" is at or before the target and, when recovery stopped before
    /// a commit, that commit's time is after it.
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
                        checks.append(.failed("target_reached", reason: "replay ended at \(replayed ?? "?"), before the last archived record \(LSN.format(want))"))
                        return
                    }
                }
            case .time(let want):
                let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
                let last = Self.logTime(log, after: "last completed transaction was at log time ")
                guard let last else {
                    checks.append(.notRun("target_reached", reason: "the server log names no last completed transaction"))
                    return
                }
                guard last <= want else {
                    checks.append(.failed("target_reached", reason: "the last replayed commit (\(TimeFormat.string(last, fractional: true))) is after the target"))
                    return
                }
                if let next = Self.logTime(log, after: "recovery stopping before commit of transaction "), next <= want {
                    checks.append(.failed("target_reached", reason: "recovery stopped before a commit at or before the target"))
                    return
                }
            }
            checks.append(.passed("target_reached"))
        } catch {
            fail("target_reached", error)
        }
    }

    /// The time at the end of the last log line containing `marker` (PostgreSQL writes
    /// `..., time 2026-11-30 14:10:22.123456+00` or `... log time 2026-...+00`).
    static func logTime(_ log: String, after marker: String) -> Date? {
        guard let line = log.split(separator: "\n").last(where: { $0.contains(marker) }) else { return nil }
        guard let r = line.range(of: #"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:?\d\d)?"#, options: [.regularExpression, .backwards]) else { return nil }
        // 2026-11-30 14:10:22.123456+00: whole seconds through ISO 8601, the fraction (up to
        // microseconds, which ISO8601DateFormatter would cut to milliseconds) added exactly.
        let text = String(line[r])
        var fraction = 0.0
        var whole = text
        if let dot = text.firstIndex(of: "."), let end = text[dot...].firstIndex(where: { $0 == "+" || $0 == "-" }) {
            fraction = Double("0" + text[dot..<end]) ?? 0
            whole = String(text[..<dot] + text[end...])
        }
        whole = whole.replacingOccurrences(of: " ", with: "T")
        if whole.range(of: #"[+-]\d\d$"#, options: .regularExpression) != nil { whole += ":00" }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: whole).map { $0.addingTimeInterval(fraction) }
    }

    /// `pg_amcheck --heapallindexed` over every database (installing the amcheck extension in
    /// the scratch copy where it is missing).
    mutating func checkAmcheck(_ server: RecoveryServer, user: String) {
        let tool = binDirectory + "/pg_amcheck"
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            checks.append(.notRun("amcheck", reason: "\(tool) is not installed (postgresql-contrib)"))
            return
        }
        let out = dir.appendingPathComponent("amcheck.out").path
        do {
            let pid = try Spawn.start(tool, ["-h", server.socketDirectory, "-p", String(server.port), "-U", user, "--all",
                                             "--install-missing", "--heapallindexed", "--no-password"], stdout: out, stderr: out)
            let status = Spawn.wait(pid)
            let lines = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").count // unreadable output: the status still decides
            if status == 0 {
                checks.append(.passed("amcheck"))
            } else if status == 2 {
                // Output lines name relations: counted, never quoted into the record.
                checks.append(.failed("amcheck", reason: "pg_amcheck found corruption (\(lines) lines of findings)"))
            } else {
                checks.append(.failed("amcheck", reason: "pg_amcheck exited \(status) (\(lines) lines of output)"))
            }
        } catch {
            checks.append(.notRun("amcheck", reason: DrillRun.reason("pg_amcheck could not run: \(error)")))
        }
    }

    /// Every user table of every database reads in full (each row detoasted, no index used),
    /// then no data checksum failure was counted.
    mutating func checkTables(_ server: RecoveryServer, user: String, conn: PGConnection) {
        var tables = 0
        var failures: [String] = []
        do {
            let dbs = try conn.query("SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname").compactMap { $0.first ?? nil }
            for (i, db) in dbs.enumerated() {
                let c = try PGConnection(dsn: dsn(server, user: user, database: db))
                _ = try c.query("SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off")
                let rels = try c.query("""
                    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
                    ORDER BY 1
                    """).compactMap { $0.first ?? nil }
                for rel in rels {
                    tables += 1
                    do {
                        _ = try c.query("SELECT count(*), sum(length(t::text)) FROM ONLY \(rel) t")
                    } catch {
                        // Table names are customer content: the database's position and a count only.
                        failures.append("database #\(i + 1)")
                    }
                }
            }
        } catch {
            fail("read_tables", error)
            checks.append(.notRun("data_checksums", reason: "not reached: read_tables did not pass"))
            return
        }
        if failures.isEmpty {
            checks.append(.passed("read_tables"))
        } else {
            checks.append(.failed("read_tables", reason: DrillRun.reason("\(failures.count) of \(tables) tables failed to read (in \(Set(failures).sorted().joined(separator: ", ")))")))
        }
        do {
            let on = try conn.query("SHOW data_checksums").first?.first ?? nil
            guard on == "on" else {
                checks.append(.notRun("data_checksums", reason: "data checksums are off in this cluster (initdb --data-checksums)"))
                return
            }
            let n = try conn.query("SELECT coalesce(sum(checksum_failures), 0) FROM pg_stat_database").first?.first ?? nil
            if n == "0" {
                checks.append(.passed("data_checksums"))
            } else {
                checks.append(.failed("data_checksums", reason: "\(n ?? "?") data checksum failures while reading"))
            }
        } catch {
            fail("data_checksums", error)
        }
    }
}
