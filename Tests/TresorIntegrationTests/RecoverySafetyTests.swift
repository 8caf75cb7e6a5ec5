import Foundation
import Testing
import TresorPostgres
import TresorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Point-in-time recovery that must never end early in silence (issue 9), against real clusters.
@Suite(.serialized) struct RecoverySafetyTests {
    /// The store path of one archived segment of tenant acme.
    func objectPath(_ f: PostgresFixture, _ segment: String) -> String {
        f.storePath + "/tenants/acme/wal/" + segment.prefix(8) + "/" + segment
    }

    /// Archives three segments after a base backup (markers 1...12); returns their names in order.
    func archiveThreeSegments(_ f: PostgresFixture) throws -> [String] {
        _ = try f.insertMarkers(1...3)
        try f.expectOK(["pg", "basebackup", "acme"])
        var names: [String] = []
        for range in [4...6, 7...9, 10...12] {
            _ = try f.insertMarkers(range)
            names.append(try f.cluster.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())"))
            try f.cluster.switchAndWaitForArchive()
        }
        return names
    }

    /// Whether the restored server stopped by itself (a FATAL error in recovery) without
    /// having been promoted.
    func stoppedWithoutPromotion(_ c: ScratchCluster) throws -> Bool {
        let promoted = try #require(c.server).waitForPromotion(seconds: 120)
        return !promoted && !FileManager.default.fileExists(atPath: c.dataDirectory + "/postmaster.pid")
    }

    @Test func aWALObjectThatCannotBeReadMidReplayStopsRecoveryInsteadOfPromotingEarly() throws {
        let f = try PostgresFixture()
        try "[postgres]\nwal_fetch_retry = \"2s\"\n".write(toFile: f.home + "/policies/zz-test.toml", atomically: true, encoding: .utf8)
        let segments = try archiveThreeSegments(f)
        try f.cluster.stop()
        // The middle segment's object is damaged in the store (one flipped byte in its body).
        let path = objectPath(f, segments[1])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x55
        try bytes.write(to: URL(fileURLWithPath: path))

        // restore_command's answers: a damaged object stops recovery (128), an absent one is
        // the end of the archive (1).
        let out = f.dir.sub("fetched").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let damaged = try f.tresor.run(["pg", "wal-fetch", "acme", segments[1], out + "/x"])
        #expect(damaged.code == 128, "\(damaged.stderr)")
        #expect(damaged.stderr.contains("cannot fetch wal file \(segments[1])"), "\(damaged.stderr)")
        let absent = try f.tresor.run(["pg", "wal-fetch", "acme", "0000000100000000000000F0", out + "/y"])
        #expect(absent.code == 1, "\(absent.stderr)")
        // Access it cannot read (here: the access file gone) is no "not archived" either.
        let access = f.home + "/pg/acme/access.json"
        try FileManager.default.moveItem(atPath: access, toPath: access + ".away")
        let unreadable = try f.tresor.run(["pg", "wal-fetch", "acme", segments[0], out + "/z"])
        // Timeline 1 never has a history file (promotion asks for it all the same): answered
        // "not archived" without opening the archive, so even without access it is no failure.
        let noHistory = try f.tresor.run(["pg", "wal-fetch", "acme", "00000001.history", out + "/h"])
        try FileManager.default.moveItem(atPath: access + ".away", toPath: access)
        #expect(noHistory.code == 1, "\(noHistory.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/h"))
        #expect(unreadable.code == 128, "\(unreadable.stderr)")
        #expect(unreadable.stderr.contains("is not set up for postgresql"), "\(unreadable.stderr)")

        // The restored server stops with a FATAL error at the damaged segment: no promotion.
        let pgdata = f.dir.sub("restored").path
        try f.expectOK(["pg", "restore", "acme", "--pgdata", pgdata, "--latest"])
        let restored = try ScratchCluster(adopting: pgdata, in: f.dir)
        try? restored.start()
        #expect(try stoppedWithoutPromotion(restored), "\(restored.logTail())")
        let log = (try? String(contentsOfFile: restored.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("could not restore file \"\(segments[1])\" from archive: child process exited with exit code 128"), "\(restored.logTail(60))")
        #expect(!log.contains("selected new timeline ID"), "\(restored.logTail(60))")
        #expect(!log.contains("archive recovery complete"), "\(restored.logTail(60))")

        // pg restore --run says so itself: exit 1 with PostgreSQL's reason.
        let again = f.dir.sub("again").path
        let run = try f.tresor.run(["pg", "restore", "acme", "--pgdata", again, "--latest", "--run"])
        #expect(run.code == 1, "\(run.stdout) \(run.stderr)")
        #expect(run.stderr.contains("stopped before the target") && run.stderr.contains("could not restore file \"\(segments[1])\""), "\(run.stderr)")
    }

    @Test func aLatestRestoreThatFallsShortOfTheLastArchivedRecordFailsInsteadOfPromoting() throws {
        let f = try PostgresFixture()
        let segments = try archiveThreeSegments(f)
        try f.cluster.stop()
        // Whole: the target is the last archived record, and the replay reaches every marker.
        let pgdata = f.dir.sub("whole").path
        let r = try #require(try f.expectOK(["--json", "pg", "restore", "acme", "--pgdata", pgdata, "--latest"]).json())
        let stop = try #require(r["stopLSN"] as? String, "\(r)")
        let conf = try String(contentsOfFile: pgdata + "/postgresql.auto.conf", encoding: .utf8)
        #expect(conf.contains("recovery_target_lsn = '\(stop)'"), "\(conf)")
        let restored = try ScratchCluster(adopting: pgdata, in: f.dir)
        try restored.start()
        #expect(try restored.waitFor("SELECT pg_is_in_recovery()", toBe: "f", seconds: 120) == "f", "\(restored.logTail())")
        #expect(try restored.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM marker") == (1...12).map(String.init).joined(separator: ","))
        #expect(restored.logTail(100).contains("recovery stopping after WAL location (LSN) \"\(stop)\""), "\(restored.logTail(100))")
        try restored.stop()

        // Short: the last segment disappears from the store after the restore was configured
        // (restore_command then rightly answers "not archived"); the replay ends before the
        // target and the server stops instead of promoting without markers 10...12.
        let short = f.dir.sub("short").path
        let shortRestore = try #require(try f.expectOK(["--json", "pg", "restore", "acme", "--pgdata", short, "--latest"]).json())
        // pg restore prefetched the segments into its spool directory: gone from there too.
        let run = try f.runDirectory(restoreCommand: try #require(shortRestore["restoreCommand"] as? String), holding: [segments[2]])
        try FileManager.default.removeItem(atPath: objectPath(f, segments[2]))
        try FileManager.default.removeItem(atPath: run + "/" + segments[2])
        let early = try ScratchCluster(adopting: short, in: f.dir)
        try? early.start()
        #expect(try stoppedWithoutPromotion(early), "\(early.logTail())")
        let log = (try? String(contentsOfFile: early.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("recovery ended before configured recovery target was reached"), "\(early.logTail(40))")
        #expect(!log.contains("selected new timeline ID"), "\(early.logTail(40))")
    }

    @Test func aRestoredClusterNeverArchivesIntoTheProductionTenant() throws {
        let f = try PostgresFixture()
        _ = try f.insertMarkers(1...2)
        try f.expectOK(["pg", "basebackup", "acme"])
        _ = try f.insertMarkers(3...4)
        try f.cluster.switchAndWaitForArchive()
        try f.cluster.stop()
        let pgdata = f.dir.sub("restored").path
        let r = try f.expectOK(["pg", "restore", "acme", "--pgdata", pgdata, "--latest"])
        #expect(r.stdout.contains("archive_mode = off"), "\(r.stdout)")
        let restored = try ScratchCluster(adopting: pgdata, in: f.dir)
        try restored.start()
        defer { try? restored.stop() }
        #expect(try restored.waitFor("SELECT pg_is_in_recovery()", toBe: "f", seconds: 120) == "f", "\(restored.logTail())")
        #expect(try restored.sql("SHOW archive_mode") == "off")
        // The promoted server's timeline 2 stays out of the tenant's archive.
        try restored.sql("INSERT INTO marker VALUES (100, clock_timestamp())")
        _ = try restored.sql("SELECT pg_switch_wal()")
        try restored.sql("CHECKPOINT")
        let timelines = try FileManager.default.contentsOfDirectory(atPath: f.storePath + "/tenants/acme/wal")
        #expect(!timelines.contains("00000002"), "\(timelines)")
    }

    @Test func aRestoreFromAnOlderBaseBackupAcrossAMissingSegmentIsRefusedNamingTheGap() throws {
        let f = try PostgresFixture()
        _ = try f.insertMarkers(1...2)
        try f.expectOK(["pg", "basebackup", "acme"])
        _ = try f.insertMarkers(3...4)
        let lost = try f.cluster.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        try f.cluster.switchAndWaitForArchive()
        _ = try f.insertMarkers(5...6)
        let target = try f.cluster.sql("SELECT pg_current_wal_insert_lsn()")
        try f.cluster.switchAndWaitForArchive()
        try f.expectOK(["pg", "basebackup", "acme"])
        try f.cluster.switchAndWaitForArchive()
        try f.cluster.stop()
        try FileManager.default.removeItem(atPath: objectPath(f, lost))
        // The target lies between the two base backups: only the first can reach it, over the gap.
        let pgdata = f.dir.sub("restored").path
        let r = try f.tresor.run(["pg", "restore", "acme", "--pgdata", pgdata, "--target-lsn", target])
        #expect(r.code == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("wal \(lost)..\(lost) of tenant 'acme' is missing"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pgdata + "/PG_VERSION"), "nothing restored")
    }

    @Test func tenantsWhoseNamesDifferOnlyInPunctuationGetTheirOwnReplicationSlots() throws {
        let dir = TempDirectory("tresor-slots")
        let tresor = TresorProcess(home: dir.sub("home").path)
        var slots: [String] = []
        for args in [["init"], ["store", "add", "local", "--url", "file://" + dir.sub("store").path, "--region", "r"]] {
            #expect(try tresor.run(args).code == 0)
        }
        for tenant in ["a-b", "a_b"] {
            let add = try tresor.run(["tenant", "add", tenant, "--region", "r", "--store", "local", "--pg", "host=127.0.0.1 port=1 user=postgres"])
            #expect(add.code == 0, "\(add.stderr)")
            let setup = try tresor.run(["--json", "pg", "setup", tenant])
            #expect(setup.code == 0, "\(setup.stderr)")
            let slot = try #require(setup.json()?["slot"] as? String)
            slots.append(try #require(slot.split(separator: "'").dropFirst().first.map(String.init), "\(slot)"))
        }
        #expect(slots[0] != slots[1], "\(slots)")
        #expect(slots.allSatisfy { $0.count <= 63 && $0.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" } }, "\(slots)")
    }

    @Test func archiveCommandSurvivesAHomeWithSpacesAndQuotesAndCarriesTheConfigFile() throws {
        let dir = TempDirectory("tresor-quote")
        let home = dir.sub("my home's 100% dir").path
        let tresor = TresorProcess(home: home)
        let cluster = try ScratchCluster(label: "pgquote")
        for args in [
            ["init"], ["store", "add", "local", "--url", "file://" + dir.sub("store").path, "--region", "r"],
            ["tenant", "add", "acme", "--region", "r", "--store", "local", "--pg", cluster.dsn],
        ] {
            let r = try tresor.run(args)
            #expect(r.code == 0, "\(args): \(r.stderr)")
        }
        // The config given on the command line, outside the home.
        let config = dir.sub("other config.toml").path
        try FileManager.default.copyItem(atPath: home + "/tresor.toml", toPath: config)
        chmod(dir.path, 0o755)
        chmod(config, 0o644)
        let setup = try tresor.run(["--config", config, "--json", "pg", "setup", "acme"])
        #expect(setup.code == 0, "\(setup.stderr)")
        let json = try #require(setup.json())
        let archiveCommand = try #require((json["settings"] as? [String: String])?["archive_command"])
        #expect(archiveCommand.contains("--config '\(config)'"), "\(archiveCommand)")
        // The line an operator pastes into postgresql.conf, as pg setup printed it.
        let line = try #require((json["postgresqlConf"] as? [String])?.first { $0.hasPrefix("archive_command = ") })
        try cluster.appendSettings(["archive_mode": "on", "archive_command": String(line.dropFirst("archive_command = ".count))])
        try cluster.start()
        defer { try? cluster.stop() }
        try cluster.switchAndWaitForArchive()
        #expect(try cluster.sql("SELECT failed_count FROM pg_stat_archiver") == "0")
    }

    @Test func aPrefetchRunByRootLeavesNothingInTheSpoolThePostgresUserCannotUse() throws {
        let f = try PostgresFixture()
        try f.expectOK(["pg", "basebackup", "acme"])
        try f.cluster.switchAndWaitForArchive()
        let first = try #require(try f.cluster.sql("SELECT last_archived_wal FROM pg_stat_archiver").split(separator: "\n").first.map { String($0.prefix(24)) })
        try f.cluster.stop()
        // As root (this test), the way an operator would run it by hand.
        #expect(getuid() == 0, "this test needs root to show the switch to the spool's owner")
        let before = WALName(first).map { WALName(timeline: $0.timeline, segment: $0.segment - 1).description } ?? first
        try f.expectOK(["pg", "wal-prefetch", "acme", before, "--wait"])
        let lock = f.home + "/spool/pg/acme/.prefetch.lock"
        let owner = try FileManager.default.attributesOfItem(atPath: lock)[.ownerAccountName] as? String
        #expect(owner == "postgres", "the prefetcher's lock belongs to \(owner ?? "?"): a later prefetch as postgres could not open it")
        let spooled = try FileManager.default.contentsOfDirectory(atPath: f.home + "/spool/pg/acme").filter { !$0.hasPrefix(".") }
        #expect(spooled.contains(first), "\(spooled)")
    }

    @Test func walOfAnotherClusterIsRefusedUntilTheTenantIsToldItsClusterWasRecreated() throws {
        let f = try PostgresFixture()
        _ = try f.insertMarkers(1...2)
        try f.expectOK(["pg", "basebackup", "acme"])
        try f.cluster.switchAndWaitForArchive()
        let ours = try f.cluster.sql("SELECT system_identifier FROM pg_control_system()")
        let ourSegment = try f.cluster.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        try f.cluster.switchAndWaitForArchive()
        try f.cluster.stop()
        let ourCopy = f.dir.sub("ours").path
        try FileManager.default.createDirectory(atPath: ourCopy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: f.cluster.dataDirectory + "/pg_wal/" + ourSegment, toPath: ourCopy + "/" + ourSegment)

        // Another cluster (its own initdb) whose WAL reaches this tenant's archive_command.
        let other = try ScratchCluster(label: "pgother")
        try other.start()
        let theirs = try other.sql("SELECT system_identifier FROM pg_control_system()")
        #expect(theirs != ours)
        let segment = try other.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        try other.stop()
        let copy = f.dir.sub("theirs").path
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: other.dataDirectory + "/pg_wal/" + segment, toPath: copy + "/" + segment)
        let refused = try f.tresor.run(["pg", "wal-push", "acme", copy + "/" + segment])
        #expect(refused.code == 1, "\(refused.stdout) \(refused.stderr)")
        #expect(refused.stderr.contains(theirs) && refused.stderr.contains(ours), "\(refused.stderr)")
        #expect(refused.stderr.contains("--new-cluster"), "\(refused.stderr)")

        // Re-created on purpose: accepted after pg setup --new-cluster, beside the old WAL.
        let setup = try f.expectOK(["pg", "setup", "acme", "--new-cluster"])
        #expect(setup.stdout.contains("database system \(ours) are kept"), "\(setup.stdout)")
        try f.expectOK(["pg", "wal-push", "acme", copy + "/" + segment])
        #expect(FileManager.default.fileExists(atPath: f.storePath + "/tenants/acme/wal/\(theirs)/00000001/\(segment)"))
        #expect(FileManager.default.fileExists(atPath: objectPath(f, segment)), "the old cluster's segment of that name is kept")
        // The window is the new cluster's: the old cluster's base backup is kept, not used.
        let window = try #require(try f.expectOK(["--json", "pg", "window", "acme"]).json())
        #expect(window["baseBackups"] as? Int == 0 && window["walFiles"] as? Int == 1, "\(window)")
        let snapshots = try f.expectOK(["--json", "snapshots", "acme"]).jsonArray()
        #expect(snapshots?.count == 1, "\(snapshots ?? [])")
        // And the replaced cluster can no longer archive here.
        let old = try f.tresor.run(["pg", "wal-push", "acme", ourCopy + "/" + ourSegment])
        #expect(old.code == 1 && old.stderr.contains("before it was replaced"), "\(old.stderr)")
    }
}
