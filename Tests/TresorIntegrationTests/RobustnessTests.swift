import Foundation
import Testing
import TresorTestSupport

@Suite(.serialized) struct RobustnessTests {
    @Test func corruptionIsDetectedAndNamedAndUnaffectedFilesStillRestore() throws {
        let f = try Fixture()
        try f.expectOK(["docs", "backup", "acme"])
        // Damage the middle of the largest pack.
        let victim = try #require(
            f.packs().max {
                (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int ?? 0) ?? 0
                    < (try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int ?? 0) ?? 0
            })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: victim))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: victim))
        let packID = URL(fileURLWithPath: victim).lastPathComponent

        // The structure check does not read data: sizes still match.
        let quick = try f.tresor.run(["check", "acme"])
        #expect(quick.code == 0)
        let full = try f.tresor.run(["--json", "check", "acme", "--read-data"])
        #expect(full.code == 3, "\(full.stdout) \(full.stderr)")
        let tenants = try #require(full.json()?["tenants"] as? [String: Any])
        let report = try #require(tenants["acme"] as? [String: Any])
        let damaged = try #require(report["damagedPacks"] as? [String: String])
        #expect(Array(damaged.keys) == [packID])
        let affected = try #require(report["affected"] as? [String: [String]])
        let paths = try #require(affected.values.first)
        #expect(!paths.isEmpty)

        // A full restore completes what it can and exits 3 naming the damaged files.
        let (restored, r) = try f.restore()
        #expect(r.code == 3)
        let diffs = TreeComparer.differences(f.docs, restored)
        let damagedFiles = Set(paths.map { String($0.dropFirst("docs/".count)) })
        for d in diffs {
            let path = String(d.split(separator: ":").first ?? "")
            #expect(damagedFiles.contains(path), "unexpected difference \(d)")
        }
        // A file outside the damaged pack restores exactly on its own.
        let all = try FileManager.default.subpathsOfDirectory(atPath: f.docs.path)
        let healthy = try #require(all.first { $0.hasSuffix(".txt") && !damagedFiles.contains($0) })
        let one = f.dir.sub("one")
        try f.expectOK(["docs", "restore", "acme", "--to", one.path, "--path", "docs/" + healthy])
        #expect(
            FileManager.default.contents(atPath: one.appendingPathComponent("docs/" + healthy).path)
                == FileManager.default.contents(atPath: f.docs.appendingPathComponent(healthy).path))
    }

    @Test func killedBackupLeavesACheckableRepositoryAndTheNextBackupCompletes() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.largeFiles = 12; o.largeFileSize = 12 << 20; return o
            }())
        let p = f.tresor.start(["docs", "backup", "acme"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait until the first pack has landed, then kill -9 mid-way.
        let deadline = Date().addingTimeInterval(60)
        while f.packs().isEmpty && Date() < deadline && p.isRunning { usleep(20_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal, "the backup was still running when killed")

        try f.expectOK(["check", "acme", "--read-data"])
        // The lock died with the process: the next run is not blocked.
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["check", "acme", "--read-data"])
        let (restored, r) = try f.restore()
        #expect(r.code == 0)
        #expect(TreeComparer.differences(f.docs, restored) == [])
    }

    @Test func aSecondConcurrentBackupExitsFourOrBothSucceed() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.largeFiles = 8; o.largeFileSize = 16 << 20; return o
            }())
        let p = f.tresor.start(["docs", "backup", "acme"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        usleep(300_000)
        let second = try f.tresor.run(["docs", "backup", "acme"])
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(second.code == 4 || second.code == 0, "\(second.code) \(second.stderr)")
        if second.code == 4 { #expect(second.stderr.contains("lock")) }
        try f.expectOK(["check", "acme", "--read-data"])
    }
}
