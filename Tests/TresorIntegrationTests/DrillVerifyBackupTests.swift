import Foundation
import Testing
import TresorCore
import TresorEvidence
import TresorTestSupport

@testable import TresorEngine

#if canImport(Glibc)
import Glibc
#endif

/// The drill's `pg_verifybackup`, split into one run per core on complementary `--ignore` lists
/// (issue 11): together the runs must still catch every damage the single run caught, in every
/// share of the files, including an extra file inside a directory one run ignores whole.
@Suite(.serialized) struct DrillVerifyBackupTests {
    /// A real plain-format base backup of the shared cluster with a SHA-256 manifest, holding one
    /// relation file much larger than the rest (so the two shares are far from alike).
    func backup() throws -> (TempDirectory, String) {
        let cluster = try ScratchCluster.shared()
        let db = try cluster.freshDatabase(prefix: "vb")
        try cluster.sql("CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g", database: db.name)
        let tmp = TempDirectory("drill-verifybackup")
        chmod(tmp.path, 0o777)
        let pgdata = tmp.path + "/pgdata"
        try ScratchCluster.run(
            ScratchCluster.bin + "/pg_basebackup",
            [
                "-h", cluster.socketDirectory, "-p", String(cluster.port), "-U", "postgres", "-D", pgdata, "-Fp", "-X", "none", "--manifest-checksums=SHA256",
                "--no-sync", "--checkpoint=fast",
            ],
            asPostgres: true)
        return (tmp, pgdata)
    }

    func verify(_ pgdata: String, _ tmp: TempDirectory, runs: Int = 2) -> DrillRecord.Check {
        DrillRun.runVerifyBackup(tool: ScratchCluster.bin + "/pg_verifybackup", pgdata: pgdata, outputPrefix: tmp.path + "/vb", cores: runs)
    }

    func flip(_ path: String) throws {
        let fd = open(path, O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        var byte: UInt8 = 0
        let at = off_t(st.st_size / 2)
        #expect(pread(fd, &byte, 1, at) == 1)
        byte ^= 0xFF
        #expect(pwrite(fd, &byte, 1, at) == 1)
    }

    @Test func aFlippedByteAMissingFileAndAnExtraFileInEitherShareOfASplitPgVerifybackupAreCaught() throws {
        let (tmp, pgdata) = try backup()
        let files = try #require(VerifyBackupPlan.files(manifest: try Data(contentsOf: URL(fileURLWithPath: pgdata + "/backup_manifest"))))
        let plan = VerifyBackupPlan.split(files, runs: 2)
        try #require(plan.ignores.count == 2)
        // The undamaged copy passes, and the split was real: each run leaves something out.
        #expect(verify(pgdata, tmp).status == .passed)
        #expect(plan.ignores.allSatisfy { !$0.isEmpty })

        for run in 0..<2 {
            // A file this run checks: not under anything it ignores, but under the other run's list.
            let ignoredHere = plan.ignores[run]
            func ignores(_ list: [String], _ path: String) -> Bool { list.contains { path == $0 || path.hasPrefix($0 + "/") } }
            let mine = try #require(
                files.filter { $0.size > 0 && !ignores(ignoredHere, $0.path) && ignores(plan.ignores[1 - run], $0.path) }.max { $0.size < $1.size },
                "run \(run) checks no file of its own")
            let path = pgdata + "/" + mine.path

            try flip(path)
            let flipped = verify(pgdata, tmp)
            #expect(flipped.status == .failed, "flipped byte in \(mine.path) (run \(run)'s share): \(flipped)")
            #expect(flipped.reason?.contains("1 of 2 runs") == true, "\(flipped)")
            try flip(path)

            #expect(rename(path, tmp.path + "/aside") == 0)
            let missing = verify(pgdata, tmp)
            #expect(missing.status == .failed, "missing \(mine.path) (run \(run)'s share): \(missing)")
            #expect(rename(tmp.path + "/aside", path) == 0)

            let extra = (path as NSString).deletingLastPathComponent + "/extra-\(run)"
            try Data("not in the manifest".utf8).write(to: URL(fileURLWithPath: extra))
            let extraFound = verify(pgdata, tmp)
            #expect(extraFound.status == .failed, "extra file beside \(mine.path) (run \(run)'s share): \(extraFound)")
            unlink(extra)

            // An extra file inside a directory this run ignores whole is the other run's to find.
            if let dir = ignoredHere.first(where: { d in files.contains { $0.path.hasPrefix(d + "/") } }) {
                let inside = pgdata + "/" + dir + "/extra-inside-\(run)"
                try Data("not in the manifest".utf8).write(to: URL(fileURLWithPath: inside))
                let found = verify(pgdata, tmp)
                #expect(found.status == .failed, "extra file in \(dir), ignored whole by run \(run): \(found)")
                unlink(inside)
            }
        }
        // Every damage was undone: the copy passes again.
        #expect(verify(pgdata, tmp).status == .passed)
    }

    @Test func theSharesOfASplitPgVerifybackupCoverEveryManifestFileExactlyOnce() {
        let files: [VerifyBackupPlan.File] = [
            .init(path: "base/5/16384", size: 800), .init(path: "base/5/16390", size: 100), .init(path: "base/5/1259", size: 90),
            .init(path: "base/1/1259", size: 80), .init(path: "global/1262", size: 10), .init(path: "PG_VERSION", size: 3),
            .init(path: "pg_xact/0000", size: 8),
        ]
        let plan = VerifyBackupPlan.split(files, runs: 2)
        #expect(plan.ignores.count == 2)
        func ignored(_ run: Int, _ path: String) -> Bool { plan.ignores[run].contains { path == $0 || path.hasPrefix($0 + "/") } }
        for f in files {
            // Checked by exactly one run: ignored by all the others.
            #expect((0..<2).filter { !ignored($0, f.path) }.count == 1, "\(f.path): \(plan.ignores)")
        }
        // The largest file alone against the rest (800 against 291 bytes), whole directories
        // ignored where the run has no file there.
        #expect(plan.ignores[1] == ["base/5/16384"])
        #expect(plan.ignores[0].contains("global") && plan.ignores[0].contains("base/1") && !plan.ignores[0].contains("base/5"))
        #expect(VerifyBackupPlan.split(files, runs: 1).ignores == [[]])
    }
}

/// The scratch server's `shared_buffers` (issue 11's drill speed): the whole restored copy fits,
/// never below PostgreSQL's default, never above a quarter of the host's memory.
@Suite struct DrillSharedBuffersTests {
    @Test func theScratchServerGetsBuffersForTheWholeRestoredCopyButNeverMoreThanAQuarterOfTheMemory() {
        let mb: UInt64 = 1 << 20
        // pgbench -s 60: 905 MB restored, 24 GiB host.
        #expect(DrillRun.sharedBuffers(bytes: 905 * mb, memory: 24 << 30) == "-c shared_buffers=1132MB")
        #expect(DrillRun.sharedBuffers(bytes: 10 * mb, memory: 24 << 30) == "-c shared_buffers=128MB")
        #expect(DrillRun.sharedBuffers(bytes: 100 << 30, memory: 24 << 30) == "-c shared_buffers=6144MB")
        #expect(DrillRun.sharedBuffers(bytes: 100 << 30, memory: 256 * mb) == "-c shared_buffers=128MB")
    }

}

/// The scratch server's settings (issue 11's drill speed): a throwaway copy, replayed without the
/// recovery prefetcher's look-ahead, which read past the target and made the end of recovery
/// fetch the last segment from the archive a second time (drill8).
@Suite struct DrillScratchSettingsTests {
    @Test func theScratchServerReplaysWithoutLookAheadPastTheTargetAndStaysAThrowawayCopy() {
        var settings: [String: String] = [:]
        let words = DrillRun.scratchSettings.split(separator: " ")
        for (flag, pair) in zip(words, words.dropFirst()) where flag == "-c" {
            let kv = pair.split(separator: "=", maxSplits: 1)
            settings[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        #expect(settings["recovery_prefetch"] == "off")
        #expect(settings["fsync"] == "off" && settings["autovacuum"] == "off" && settings["full_page_writes"] == "off")
        #expect(settings.count == 4, "\(settings)")
    }

    @Test func theDrillsThrowawayCopyIsRestoredWithoutSyncingTheFileSystem() {
        // The copy lives in the page cache until the drill removes it; a synced restore flushed
        // it (and everything else dirty on the file system) to disk first.
        #expect(DrillRun.restoreSyncs == false)
    }
}

/// The drill's scratch server ends recovery at its target by a promotion (a trigger file found
/// while paused there), not by the end-of-recovery checkpoint that writes every buffer replay
/// changed (drill7); only where PostgreSQL has `promote_trigger_file` (12 to 15).
@Suite struct DrillPromoteAtTargetTests {
    func dataDirectory(version: String?) throws -> (String, String) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("promote-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/pgdata", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/server", withIntermediateDirectories: true)
        if let version { try (version + "\n").write(toFile: root + "/pgdata/PG_VERSION", atomically: true, encoding: .utf8) }
        return (root + "/pgdata", root + "/server")
    }

    @Test func aPostgreSQL15ServerPausesAtItsTargetAndFindsItsPromoteTriggerAlreadyThere() throws {
        let (pgdata, work) = try dataDirectory(version: "15")
        defer { try? FileManager.default.removeItem(atPath: (work as NSString).deletingLastPathComponent) }
        let settings = DrillRun.promoteAtTarget(pgdata: pgdata, workDirectory: work)
        #expect(
            settings == " -c hot_standby=on -c recovery_target_action=pause -c recovery_min_apply_delay=0 -c promote_trigger_file=\(work)/promote")
        #expect(FileManager.default.fileExists(atPath: work + "/promote"))
    }

    @Test func aServerWithoutPromoteTriggerFileKeepsTheRestoresOwnEndOfRecovery() throws {
        for version in ["16", "11", "garbage", nil] {
            let (pgdata, work) = try dataDirectory(version: version)
            defer { try? FileManager.default.removeItem(atPath: (work as NSString).deletingLastPathComponent) }
            #expect(DrillRun.promoteAtTarget(pgdata: pgdata, workDirectory: work) == "")
            #expect(!FileManager.default.fileExists(atPath: work + "/promote"))
        }
        // No work directory to hold the trigger: no pause either (it would never end).
        let (pgdata, work) = try dataDirectory(version: "15")
        defer { try? FileManager.default.removeItem(atPath: (work as NSString).deletingLastPathComponent) }
        #expect(DrillRun.promoteAtTarget(pgdata: pgdata, workDirectory: work + "/missing") == "")
    }
}

/// The drill's scratch removal unlinks its files on one thread per core (drill7): it must still
/// take every file, at any depth, and never follow a symbolic link out of the tree.
@Suite struct DrillScratchRemovalTests {
    @Test func theParallelRemovalTakesEveryFileAndNeverFollowsALinkOutOfTheTree() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("scratch-rm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let outside = base + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: outside + "/precious"))
        try FileManager.default.createDirectory(atPath: base + "/home", withIntermediateDirectories: true)
        let home = Home(root: URL(fileURLWithPath: base + "/home"))
        let scratch = DrillScratch(home: home)
        let dir = try scratch.create(id: "rmtest")
        for i in 0..<40 {
            let sub = dir.path + "/pgdata/base/\(i % 4)" + (i % 3 == 0 ? "/deep/er" : "")
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
            try Data(repeating: UInt8(i), count: (i + 1) * 4096).write(to: URL(fileURLWithPath: sub + "/\(16384 + i)"))
        }
        // A link to a directory outside and one to a file outside: removed as links, their targets kept.
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/pgdata/pg_tblspc", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/pgdata/base/1/link", withDestinationPath: outside + "/precious")
        try scratch.remove(dir)
        #expect(!FileManager.default.fileExists(atPath: dir.path))
        #expect((try? String(contentsOfFile: outside + "/precious", encoding: .utf8)) == "keep")
    }

    @Test func aFileTheThreadsCannotUnlinkMakesTheRemovalFailAndSayWhere() throws {
        guard geteuid() != 0 else { return }  // root unlinks anything: the refusal below cannot be made
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("scratch-rm-\(UUID().uuidString)").path
        defer {
            chmod(base + "/home/scratch/drill-locked/pgdata", 0o700)
            try? FileManager.default.removeItem(atPath: base)
        }
        try FileManager.default.createDirectory(atPath: base + "/home", withIntermediateDirectories: true)
        let home = Home(root: URL(fileURLWithPath: base + "/home"))
        let scratch = DrillScratch(home: home)
        let dir = try scratch.create(id: "locked")
        try FileManager.default.createDirectory(atPath: dir.path + "/pgdata", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir.path + "/pgdata/16384"))
        chmod(dir.path + "/pgdata", 0o500)
        #expect(throws: CoreError.self) { try scratch.remove(dir) }
        #expect(FileManager.default.fileExists(atPath: dir.path + "/pgdata/16384"))
    }
}
