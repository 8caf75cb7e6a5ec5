import Foundation
import Testing
import TresorPostgres
import TresorStore
import TresorTestSupport

/// A tenant whose database is a real PostgreSQL 15 cluster archiving through the built binary.
final class PostgresFixture: @unchecked Sendable {
    let dir = TempDirectory("tresor-pgit")
    let tresor: TresorProcess
    let cluster: ScratchCluster
    var home: String { dir.sub("home").path }
    var storePath: String { dir.sub("store").path }

    init() throws {
        tresor = TresorProcess(home: dir.sub("home").path)
        cluster = try ScratchCluster(label: "pgit")
        try expectOK(["init"])
        try expectOK(["store", "add", "local", "--url", "file://" + storePath, "--region", "eu-central"])
        try expectOK(["tenant", "add", "acme", "--region", "eu-central", "--store", "local", "--pg", cluster.dsn])
        let setup = try expectOK(["--json", "pg", "setup", "acme"])
        let settings = try #require(setup.json()?["settings"] as? [String: String])
        let archiveCommand = try #require(settings["archive_command"])
        #expect(archiveCommand == "\(TresorProcess.binary) --home \(home) pg wal-push acme %p")
        try cluster.appendSettings(["archive_mode": "on", "archive_command": "'\(archiveCommand)'"])
        try cluster.start()
        try cluster.sql("CREATE TABLE marker (id int PRIMARY KEY, at timestamptz NOT NULL)")
    }

    @discardableResult
    func expectOK(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> TresorProcess.Result {
        let r = try tresor.run(args)
        #expect(r.code == 0, "tresor \(args.joined(separator: " ")) exited \(r.code): \(r.stderr)", sourceLocation: sourceLocation)
        return r
    }

    /// Inserts markers `range`, each in its own transaction, a little apart in time; returns
    /// each marker's commit-time clock_timestamp() as text.
    func insertMarkers(_ range: ClosedRange<Int>) throws -> [Int: String] {
        var at: [Int: String] = [:]
        for i in range {
            at[i] = try cluster.sql(
                "INSERT INTO marker VALUES (\(i), clock_timestamp()) RETURNING to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
            Thread.sleep(forTimeInterval: 0.05)
        }
        return at
    }

    /// Restores into a new data dir, starts it and waits for the end of recovery; returns the
    /// markers it holds.
    func restoreAndStart(_ target: [String]) throws -> (ScratchCluster, [Int]) {
        let pgdata = dir.sub("restore-\(UUID().uuidString.prefix(6))").path
        try expectOK(["pg", "restore", "acme", "--pgdata", pgdata] + target)
        let restored = try ScratchCluster(adopting: pgdata, in: dir)
        try restored.start()
        let inRecovery = try restored.waitFor("SELECT pg_is_in_recovery()", toBe: "f", seconds: 120)
        #expect(inRecovery == "f", "the restored server did not finish recovery:\n\(restored.logTail())")
        let ids = try restored.sql("SELECT id FROM marker ORDER BY id").split(separator: "\n").compactMap { Int($0) }
        return (restored, ids)
    }
}

@Suite(.serialized) struct PostgresTests {
    @Test func pointInTimeRestoreByTimeAndLSNWithTheArchiveRules() throws {
        let f = try PostgresFixture()
        _ = try f.insertMarkers(1...3)
        let backup = try f.expectOK(["--json", "pg", "basebackup", "acme"])
        let info = try #require(backup.json()?["postgres"] as? [String: Any])
        #expect((info["startLSN"] as? String)?.contains("/") == true)
        // A second base backup after a small change stores a small fraction of the first.
        var at = try f.insertMarkers(4...5)
        let first = try #require(backup.json())
        let second = try #require(try f.expectOK(["--json", "pg", "basebackup", "acme"]).json())
        let firstStored = try #require(first["newBytesStored"] as? Int), secondStored = try #require(second["newBytesStored"] as? Int)
        let secondSize = try #require(second["bytes"] as? Int)
        #expect(secondStored * 10 < firstStored, "second base backup stored \(secondStored) bytes, the first \(firstStored)")
        #expect(secondStored * 20 < secondSize, "second base backup stored \(secondStored) of \(secondSize) bytes")
        at.merge(try f.insertMarkers(6...12)) { a, _ in a }
        let lsnAfter12 = try f.cluster.sql("SELECT pg_current_wal_insert_lsn()")
        try f.cluster.switchAndWaitForArchive()
        _ = try f.insertMarkers(13...16)
        try f.cluster.switchAndWaitForArchive()

        // The window starts at the base backup's end and reaches the last archived segment.
        let window = try f.expectOK(["--json", "pg", "window", "acme"]).json()
        #expect(window?["earliestTime"] as? String != nil)
        #expect((window?["gaps"] as? [Any])?.isEmpty == true)

        // Outside the window: refused with the window in the message, exit 2.
        let early = try f.tresor.run(["pg", "restore", "acme", "--pgdata", f.dir.sub("early").path, "--target-time", "2001-01-01T00:00:00Z"])
        #expect(early.code == 2)
        #expect(early.stderr.contains("before the end of the oldest base backup"), "\(early.stderr)")
        let late = try f.tresor.run(["pg", "restore", "acme", "--pgdata", f.dir.sub("late").path, "--target-time", "2999-01-01T00:00:00Z"])
        #expect(late.code == 2)
        #expect(late.stderr.contains("after the latest recoverable point"), "\(late.stderr)")

        // The duplicate rule and the missing-segment rule, as PostgreSQL would meet them.
        let archived = try #require(try f.cluster.sql("SELECT last_archived_wal FROM pg_stat_archiver").split(separator: "\n").first.map(String.init))
        let fetched = f.dir.sub("fetched").path
        try FileManager.default.createDirectory(atPath: fetched, withIntermediateDirectories: true)
        try f.expectOK(["pg", "wal-fetch", "acme", archived, fetched + "/" + archived])
        try f.expectOK(["pg", "wal-push", "acme", fetched + "/" + archived])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: fetched + "/" + archived))
        bytes[100] ^= 0xFF
        let changed = f.dir.sub("changed").path
        try FileManager.default.createDirectory(atPath: changed, withIntermediateDirectories: true)
        try bytes.write(to: URL(fileURLWithPath: changed + "/" + archived))
        let conflict = try f.tresor.run(["pg", "wal-push", "acme", changed + "/" + archived])
        #expect(conflict.code != 0)
        #expect(conflict.stderr.contains("already archived") && conflict.stderr.contains("different content"), "\(conflict.stderr)")
        let notSetUp = try f.tresor.run(["pg", "wal-push", "other", fetched + "/" + archived])
        #expect(notSetUp.code == 2)
        #expect(notSetUp.stderr.contains("not set up for postgresql") && notSetUp.stderr.contains("hint: tresor pg setup other"), "\(notSetUp.stderr)")
        let missing = try f.tresor.run(["pg", "wal-fetch", "acme", "0000000100000FFF000000FF", fetched + "/x"])
        #expect(missing.code == 1)
        #expect(!FileManager.default.fileExists(atPath: fetched + "/x"))

        // Prefetch: the segment after a fetched one lands in the spool, owned by the postgres
        // user (whoever fetched), and the next fetch delivers it from there.
        let segments = try FileManager.default.contentsOfDirectory(atPath: f.storePath + "/tenants/acme/wal/00000001")
            .filter { $0.count == 24 }.sorted()
        let pair = try #require(
            zip(segments, segments.dropFirst()).first { a, b in
                a.prefix(16) == b.prefix(16) && Int(a.suffix(8), radix: 16)! + 1 == Int(b.suffix(8), radix: 16)!
            })
        try f.expectOK(["pg", "wal-prefetch", "acme", pair.0, "--wait"])
        let spooled = f.home + "/spool/pg/acme/" + pair.1
        for _ in 0..<150 where !FileManager.default.fileExists(atPath: spooled) { Thread.sleep(forTimeInterval: 0.2) }
        let owner = try FileManager.default.attributesOfItem(atPath: spooled)[.ownerAccountName] as? String
        #expect(owner == "postgres")
        try f.expectOK(["pg", "wal-fetch", "acme", pair.1, fetched + "/" + pair.1])
        #expect(!FileManager.default.fileExists(atPath: spooled), "delivered from the spool")
        #expect(FileManager.default.contents(atPath: fetched + "/" + pair.1)?.count == 16 << 20)

        // Base backups are ordinary snapshots to the checker.
        let check = try f.expectOK(["check", "acme", "--read-data"])
        #expect(check.stdout.contains("ok"), "\(check.stdout)")
        // So is the WAL archive: every object read and authenticated.
        let checkJSON = try #require(try f.expectOK(["--json", "check", "acme", "--read-data"]).json()?["tenants"] as? [String: [String: Any]])
        let walFiles = try #require(checkJSON["acme"]?["walFiles"] as? Int)
        #expect(walFiles > 3 && checkJSON["acme"]?["walFilesRead"] as? Int == walFiles, "\(checkJSON)")

        // pg restore fetches the first segments the replay needs (from the chosen base backup's
        // start) into its own spool directory while it restores the files, owned by the postgres
        // user, so the server's first restore_command calls find them there instead of waiting
        // for the store.
        let secondStart = try #require((second["postgres"] as? [String: Any])?["startWAL"] as? String)
        let spooledRestore = try #require(
            try f.expectOK(["--json", "pg", "restore", "acme", "--pgdata", f.dir.sub("spooled").path, "--target-lsn", lsnAfter12]).json())
        let run = try f.runDirectory(restoreCommand: try #require(spooledRestore["restoreCommand"] as? String), holding: [secondStart])
        #expect(try FileManager.default.attributesOfItem(atPath: run + "/" + secondStart)[.ownerAccountName] as? String == "postgres")

        // Stop the source so only restored clusters archive from here on.
        try f.cluster.stop()

        // Target time between markers 8 and 9.
        let t8 = try #require(at[8]), t9 = try #require(at[9])
        let d8 = try #require(ISO8601DateFormatter.fractional.date(from: t8)), d9 = try #require(ISO8601DateFormatter.fractional.date(from: t9))
        let target = ISO8601DateFormatter.fractional.string(from: d8.addingTimeInterval(d9.timeIntervalSince(d8) / 2))
        let (byTime, idsByTime) = try f.restoreAndStart(["--target-time", target, "--archive"])
        #expect(idsByTime == Array(1...8), "target \(target) between \(t8) and \(t9): \(idsByTime)")
        // The promoted server starts timeline 2 and archives its history file through tresor.
        try byTime.sql("INSERT INTO marker VALUES (100, clock_timestamp())")
        try byTime.switchAndWaitForArchive()
        #expect(FileManager.default.fileExists(atPath: f.storePath + "/tenants/acme/wal/00000002/00000002.history"))
        try byTime.stop()

        // Target LSN: everything committed before it, nothing after.
        let (byLSN, idsByLSN) = try f.restoreAndStart(["--target-lsn", lsnAfter12])
        #expect(idsByLSN == Array(1...12), "\(idsByLSN)")
        try byLSN.stop()

        // Following timeline 2 reaches what the first restore wrote after its promotion. (The
        // second restore forked timeline 3, having found 00000002.history in the archive.)
        let (onFork, idsOnFork) = try f.restoreAndStart(["--latest", "--timeline", "2"])
        #expect(idsOnFork == Array(1...8) + [100], "\(idsOnFork)")
        try onFork.stop()
    }
}

extension PostgresTests {
    @Test func baseBackupWhoseWALIsNotArchivedFailsAndStoresNoSnapshot() throws {
        let dir = TempDirectory("tresor-pgnoarch")
        let cluster = try ScratchCluster(label: "pgnoarch")  // archive_mode off
        try cluster.start()
        let tresor = TresorProcess(home: dir.sub("home").path)
        for args in [
            ["init"], ["store", "add", "local", "--url", "file://" + dir.sub("store").path, "--region", "r"],
            ["tenant", "add", "acme", "--region", "r", "--store", "local", "--pg", cluster.dsn],
        ] {
            let r = try tresor.run(args)
            #expect(r.code == 0, "\(args): \(r.stderr)")
        }
        try "[postgres]\narchive_wait = \"1s\"\n".write(toFile: dir.sub("home/policies/zz-test.toml").path, atomically: true, encoding: .utf8)
        let r = try tresor.run(["pg", "basebackup", "acme"])
        #expect(r.code == 1)
        #expect(r.stderr.contains("needed by the base backup is not in the archive"), "\(r.stderr)")
        #expect(r.stderr.contains("hint: set archive_command"), "\(r.stderr)")
        let list = try tresor.run(["--json", "snapshots", "acme"])
        #expect(list.code == 0 && list.jsonArray()?.isEmpty == true, "\(list.stdout) \(list.stderr)")
        try cluster.stop()
    }
}

extension ISO8601DateFormatter {
    static var fractional: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }
}

extension PostgresTests {
    /// `pg stream` next to archive_command: it survives a server restart, confirms to the slot only
    /// what is stored, and after `kill -9` of the primary's postmaster a `--latest` restore has
    /// every marker committed up to the flush interval before the crash.
    @Test func streamingKeepsTheRPOWithinTheFlushIntervalWhenThePrimaryIsKilled() throws {
        let f = try PostgresFixture()
        let flushInterval = 1.0
        try "[postgres]\nstream_flush_interval = \"\(Int(flushInterval))s\"\n".write(
            toFile: f.home + "/policies/zz-test.toml", atomically: true, encoding: .utf8)
        _ = try f.insertMarkers(1...2)
        try f.expectOK(["pg", "basebackup", "acme"])

        let log = f.dir.sub("stream.log").path
        #expect(FileManager.default.createFile(atPath: log, contents: nil))
        let stream = f.tresor.start(["--json", "pg", "stream", "acme"])
        stream.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        stream.standardError = stream.standardOutput
        try stream.run()
        defer { if stream.isRunning { stream.terminate() } }
        let slotActive = "SELECT coalesce((SELECT active::text FROM pg_replication_slots WHERE slot_name = 'tresor_acme'), 'none')"
        #expect(
            try f.cluster.waitFor(slotActive, toBe: "true", seconds: 30) == "true", "stream log:\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")

        // Markers 100 ms apart; each one's commit time as the server recorded it.
        var at: [Int: Date] = [:]
        func marker(_ i: Int) throws {
            let text = try f.cluster.sql("INSERT INTO marker VALUES (\(i), clock_timestamp()) RETURNING extract(epoch FROM at)")
            // psql prints the row, then the command tag.
            at[i] = Date(timeIntervalSince1970: try #require(text.split(separator: "\n").first.flatMap { Double($0) }))
            Thread.sleep(forTimeInterval: 0.1)
        }
        for i in 3...10 { try marker(i) }
        // A finished segment reaches the archive twice (archive_command and the stream): the
        // duplicate rule keeps one copy and neither side fails.
        try f.cluster.switchAndWaitForArchive()
        for i in 11...20 { try marker(i) }
        // A server restart: the stream reconnects through the slot and goes on.
        try f.cluster.stop()
        try f.cluster.start()
        #expect(try f.cluster.waitFor(slotActive, toBe: "true", seconds: 60) == "true")
        for i in 21...40 { try marker(i) }

        // Within the flush interval (and a margin for the store write), the WAL of every commit
        // is stored, with no segment switch: the window's latest point passes the flush position.
        let flushed = try #require(LSN.parse(try f.cluster.sql("SELECT pg_current_wal_flush_lsn()")))
        Thread.sleep(forTimeInterval: flushInterval + 1.5)
        let window = try #require(try f.expectOK(["--json", "pg", "window", "acme"]).json())
        let latest = try #require(LSN.parse(window["latestLSN"] as? String ?? ""))
        #expect(latest >= flushed, "window \(window) behind the server's flush position \(flushed)")
        #expect(window["streamed"] as? String != nil, "\(window)")
        // The slot holds no more than what is stored: its restart point is not past the window.
        let restart = try #require(LSN.parse(try f.cluster.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'tresor_acme'")))
        let storedNow = try #require(LSN.parse(try f.expectOK(["--json", "pg", "window", "acme"]).json()?["latestLSN"] as? String ?? ""))
        #expect(restart <= storedNow)
        #expect(try f.cluster.sql("SELECT failed_count FROM pg_stat_archiver") == "0")

        // The crash: markers keep coming, then kill -9 of the postmaster right after one commits.
        for i in 41...60 { try marker(i) }
        let pid = try #require(
            Int32(
                try String(contentsOfFile: f.cluster.dataDirectory + "/postmaster.pid", encoding: .utf8)
                    .split(separator: "\n").first.map(String.init) ?? ""))
        kill(pid, SIGKILL)
        let crash = try #require(at[60])
        Thread.sleep(forTimeInterval: flushInterval + 1)
        stream.terminate()  // SIGTERM: store what is held, then exit 0
        for _ in 0..<300 where stream.isRunning { Thread.sleep(forTimeInterval: 0.1) }
        #expect(!stream.isRunning, "pg stream did not stop within 30 s of SIGTERM")
        if stream.isRunning { kill(stream.processIdentifier, SIGKILL) }
        stream.waitUntilExit()
        let events = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(stream.terminationStatus == 0, "\(events)")
        let stats = try #require(events.last?["stats"] as? [String: Any], "\(events)")
        #expect(stats["conflicts"] as? Int == 0, "\(stats)")
        #expect((stats["connections"] as? Int ?? 0) >= 2, "reconnected after the restart: \(stats)")
        #expect(events.contains { $0["event"] as? String == "segment" }, "\(events)")

        let (restored, ids) = try f.restoreAndStart(["--latest"])
        defer { try? restored.stop() }
        let last = try #require(ids.last)
        #expect(ids == Array(1...last), "\(ids)")
        let lost = crash.timeIntervalSince(try #require(at[last]))
        #expect(lost <= flushInterval, "the restore ends at marker \(last), \(lost) s before the crash (markers up to 60)")
    }
}

extension PostgresTests {
    /// An S3 store: archive_command and restore_command run as the postgres user with a key that
    /// may touch only the tenant's WAL prefix (`pg setup --wal-credentials`), never the operator's.
    @Test func walOnAnS3StoreGoesThroughAKeyLimitedToTheWALPrefix() throws {
        let server = try SeaweedServer.shared()
        let dir = TempDirectory("tresor-pgs3")
        var tresor = TresorProcess(home: dir.sub("home").path)
        tresor.environment = server.credentialsEnvironment  // the operator's key, for operator commands only
        let cluster = try ScratchCluster(label: "pgs3")
        func ok(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> TresorProcess.Result {
            let r = try tresor.run(args)
            #expect(r.code == 0, "tresor \(args.joined(separator: " ")) exited \(r.code): \(r.stderr)", sourceLocation: sourceLocation)
            return r
        }
        _ = try ok(["init"])
        _ = try ok(["store", "add", "s3", "--url", server.url(bucket: SeaweedServer.walBucket), "--region", "eu"])
        _ = try ok(["tenant", "add", "acme", "--region", "eu", "--store", "s3", "--pg", cluster.dsn])

        let refused = try tresor.run(["pg", "setup", "acme"])
        #expect(refused.code == 2)
        #expect(
            refused.stderr.contains("--wal-credentials") && refused.stderr.contains("s3://\(SeaweedServer.walBucket)/tenants/acme/wal/"), "\(refused.stderr)")
        let credentials = dir.sub("wal-credentials").path
        try "[default]\naws_access_key_id = \(server.walAccessKey)\naws_secret_access_key = \(server.walSecretKey)\n"
            .write(toFile: credentials, atomically: true, encoding: .utf8)
        let setup = try ok(["--json", "pg", "setup", "acme", "--wal-credentials", credentials])
        let archiveCommand = try #require((setup.json()?["settings"] as? [String: String])?["archive_command"])
        #expect(!setup.stdout.contains(server.walSecretKey))
        let stored = dir.sub("home/pg/acme/s3-credentials").path
        let attributes = try FileManager.default.attributesOfItem(atPath: stored)
        #expect(attributes[.groupOwnerAccountName] as? String == "postgres")
        #expect((attributes[.posixPermissions] as? Int) == 0o640)

        // The key really is limited: nothing outside the WAL prefix can be written or read.
        let walOnly = try StoreURL.parse(server.url(bucket: SeaweedServer.walBucket))
            .open(create: false, credentials: S3Credentials(accessKeyID: server.walAccessKey, secretAccessKey: server.walSecretKey))
        #expect(throws: StoreError.self) { try [UInt8]([1, 2, 3]).withUnsafeBytes { try walOnly.put("tenants/acme/packs/x", bytes: $0, ifAbsent: false) } }
        #expect(throws: StoreError.self) { try [UInt8]([1, 2, 3]).withUnsafeBytes { try walOnly.put("tenants/other/wal/x", bytes: $0, ifAbsent: false) } }

        try cluster.appendSettings(["archive_mode": "on", "archive_command": "'\(archiveCommand)'"])
        try cluster.start()
        try cluster.sql("CREATE TABLE marker (id int PRIMARY KEY, at timestamptz NOT NULL)")
        try cluster.sql("INSERT INTO marker VALUES (1, clock_timestamp())")
        _ = try ok(["pg", "basebackup", "acme"])
        try cluster.sql("INSERT INTO marker VALUES (2, clock_timestamp())")
        Thread.sleep(forTimeInterval: 0.2)
        let target = try cluster.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        Thread.sleep(forTimeInterval: 0.2)
        try cluster.sql("INSERT INTO marker VALUES (3, clock_timestamp())")
        try cluster.switchAndWaitForArchive()
        #expect(try cluster.sql("SELECT failed_count FROM pg_stat_archiver") == "0")
        #expect(try walOnly.list(prefix: "tenants/acme/wal/").count >= 2)
        #expect(throws: StoreError.self) { try walOnly.list(prefix: "tenants/acme/snapshots/") }
        try cluster.stop()

        // restore_command (wal-fetch as postgres, through the same limited key) replays to the target.
        let pgdata = dir.sub("restored").path
        _ = try ok(["pg", "restore", "acme", "--pgdata", pgdata, "--target-time", target])
        let restored = try ScratchCluster(adopting: pgdata, in: dir)
        try restored.start()
        #expect(try restored.waitFor("SELECT pg_is_in_recovery()", toBe: "f", seconds: 120) == "f", "\(restored.logTail())")
        #expect(try restored.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM marker") == "1,2")
        try restored.stop()
    }
}
