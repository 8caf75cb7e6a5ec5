import Foundation
import Testing
import TresorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `tresor drill run` and `drill clean` over real clusters (issue 11): a drill that passes is a
/// verifiable record, a damaged repository fails the drill (exit 3, in the log), and no scratch
/// directory or server outlives a drill, even one killed with SIGKILL.
final class DrillFixture: @unchecked Sendable {
    let dir = TempDirectory("tresor-drill")
    let tresor: TresorProcess
    let cluster: ScratchCluster
    var home: String { dir.sub("home").path }
    var storePath: String { dir.sub("store").path }
    var docs: String { dir.sub("docs").path }
    /// Packs written by the document backup, then by the base backup.
    var documentPacks: [String] = []
    var basePacks: [String] = []

    init() throws {
        tresor = TresorProcess(home: dir.sub("home").path)
        cluster = try ScratchCluster(label: "drill", checksums: true)
        try FileManager.default.createDirectory(atPath: docs + "/letters", withIntermediateDirectories: true)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<30 {
            let bytes = (0..<(2000 + i * 997)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            try Data(bytes).write(to: URL(fileURLWithPath: docs + "/letters/doc-\(i).bin"))
        }
        try expectOK(["init"])
        try expectOK(["store", "add", "local", "--url", "file://" + storePath, "--region", "eu-central"])
        try expectOK(["tenant", "add", "acme", "--region", "eu-central", "--store", "local", "--pg", cluster.dsn, "--docs", docs])
        let setup = try expectOK(["--json", "pg", "setup", "acme"])
        let archiveCommand = try #require((setup.json()?["settings"] as? [String: String])?["archive_command"])
        try cluster.appendSettings(["archive_mode": "on", "archive_command": "'\(archiveCommand)'"])
        try cluster.start()
        // pgbench's tables (with their primary key indexes) and a marker table.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ScratchCluster.bin + "/pgbench")
        p.arguments = ["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", String(cluster.port), "-U", "postgres", "postgres"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "pgbench -i failed")
        try cluster.sql("CREATE TABLE marker (id int PRIMARY KEY, at timestamptz NOT NULL)")
        try expectOK(["docs", "backup", "acme"])
        documentPacks = packs()
        try expectOK(["pg", "basebackup", "acme"])
        basePacks = packs().filter { !documentPacks.contains($0) }
        for i in 1...5 { try cluster.sql("INSERT INTO marker VALUES (\(i), clock_timestamp())") }
        try cluster.switchAndWaitForArchive()
    }

    @discardableResult
    func expectOK(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> TresorProcess.Result {
        let r = try tresor.run(args)
        #expect(r.code == 0, "tresor \(args.joined(separator: " ")) exited \(r.code): \(r.stderr)", sourceLocation: sourceLocation)
        return r
    }

    func packs() -> [String] { storedPacks(storePath) }

    /// Flips a byte every 1000 bytes of each file (every blob in a pack is hit); returns the
    /// originals so the damage can be undone.
    func damage(_ paths: [String]) throws -> [String: Data] {
        var originals: [String: Data] = [:]
        for path in paths {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            originals[path] = data
            var bytes = data
            for i in stride(from: 500, to: bytes.count, by: 1000) { bytes[i] ^= 0x5A }
            try bytes.write(to: URL(fileURLWithPath: path))
        }
        return originals
    }

    /// What the drills left under the home's scratch directory.
    func scratchLeftovers() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: home + "/scratch")) ?? []).filter { $0.hasPrefix("drill-") }
    }

    /// PostgreSQL processes running on data directories under this fixture's home.
    func scratchServers() -> [Int32] {
        let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        func isScratchPostgres(_ pid: Int32) -> Bool {
            let cmd = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            let text = String(decoding: cmd, as: UTF8.self)
            return text.hasPrefix(ScratchCluster.bin + "/postgres\0") && text.contains(home + "/scratch")
        }
        func parent(_ pid: Int32) -> Int32? {
            // /proc/PID/stat: "pid (comm) state ppid ...": the field after the last ')'.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 ? Int32(fields[1]) : nil
        }
        // The postmaster itself: not runuser or pg_ctl on its way to start it, and not a child it
        // just forked (which shows the postmaster's command line until it sets its own title).
        return procs.compactMap(Int32.init).filter { pid in
            isScratchPostgres(pid) && !(parent(pid).map(isScratchPostgres) ?? false)
        }
    }

    func drillRecords() throws -> [[String: Any]] {
        let r = try expectOK(["--json", "evidence", "list", "--kind", "drill"])
        return (r.json()?["entries"] as? [[String: Any]]) ?? []
    }
}

@Suite(.serialized) struct DrillRunTests {
    static let verifier = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/verify-evidence.py").standardizedFileURL.path

    func pythonVerifies(_ f: DrillFixture) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.verifier, f.home + "/evidence/log.jsonl", f.home + "/keys/evidence.pub"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    @Test func aDrillOverARealClusterWithDocumentsPassesEveryCheckAndLeavesAVerifiableRecordAndNoScratch() throws {
        let f = try DrillFixture()
        let r = try f.tresor.run(["--json", "drill", "run", "acme", "--target", "latest"])
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        let record = try #require(r.json()?["record"] as? [String: Any], "\(r.stdout)")
        let checks = (record["checks"] as? [[String: Any]]) ?? []
        #expect(
            checks.compactMap { $0["name"] as? String } == [
                "restore", "pg_verifybackup", "connect", "target_reached", "amcheck", "read_tables", "data_checksums", "documents_sample",
            ])
        #expect(checks.allSatisfy { $0["status"] as? String == "passed" }, "\(checks)")
        // Each check carries its own duration (the benchmark's per-check split).
        #expect(checks.allSatisfy { ($0["ms"] as? Int).map { $0 >= 0 } == true }, "\(checks)")
        #expect(record["result"] as? String == "pass")
        #expect((record["rto_ms"] as? Int ?? 0) > 0 && record["rpo_ms"] is Int)
        // pgbench_accounts alone is 100 000 rows (13 MB on disk): the restore holds at least that,
        // plus the 20 sampled documents.
        #expect((record["bytes_restored"] as? Int ?? 0) > 13_000_000)
        #expect((record["files_restored"] as? Int ?? 0) > 20)
        #expect(f.scratchLeftovers().isEmpty && f.scratchServers().isEmpty)

        // A random target with a seed: recorded, and reached.
        let random = try f.tresor.run(["--json", "drill", "run", "acme", "--seed", "42"])
        #expect(random.code == 0, "\(random.stdout)\n\(random.stderr)")
        let second = try #require(random.json()?["record"] as? [String: Any])
        #expect(second["seed"] as? Int == 42)
        #expect((second["target"] as? [String: Any])?["kind"] as? String == "random")
        #expect(((second["target"] as? [String: Any])?["lsn"] as? String)?.contains("/") == true)
        #expect(f.scratchLeftovers().isEmpty && f.scratchServers().isEmpty)

        #expect(try f.expectOK(["--json", "evidence", "verify"]).json()?["verifiedRecords"] as? Int == 2)
        #expect(try pythonVerifies(f) == 0)
        // The control counts the drill as the tenant's passing restore test.
        #expect(try f.tresor.run(["drill", "status"]).code == 0)
    }

    @Test func aDrillOverADamagedDocumentPackOrBaseBackupChunkFailsWithExit3AndTheFailureInTheLog() throws {
        let f = try DrillFixture()
        try f.cluster.stop()
        // Documents: every blob of the document packs damaged.
        let docs = try f.damage(f.documentPacks)
        let bad = try f.tresor.run(["--json", "drill", "run", "acme", "--target", "latest"])
        #expect(bad.code == 3, "\(bad.stdout)\n\(bad.stderr)")
        for (path, data) in docs { try data.write(to: URL(fileURLWithPath: path)) }
        #expect(f.scratchLeftovers().isEmpty && f.scratchServers().isEmpty)

        // Base backup: every blob of the base backup's packs damaged.
        _ = try f.damage(f.basePacks)
        let base = try f.tresor.run(["--json", "drill", "run", "acme", "--target", "latest"])
        #expect(base.code == 3, "\(base.stdout)\n\(base.stderr)")
        #expect(f.scratchLeftovers().isEmpty && f.scratchServers().isEmpty)

        // Both failures are in the signed log, with what failed.
        let list = try f.expectOK(["--json", "evidence", "list", "--kind", "drill"])
        let text = list.stdout
        #expect(text.components(separatedBy: "\"fail\"").count - 1 == 2, "\(text)")
        let records = try f.drillRecords()
        let payloads = records.compactMap { $0["payload"] as? [String: Any] }
        #expect(payloads.count == 2, "\(text)")
        func status(_ p: [String: Any], _ name: String) -> String? {
            ((p["checks"] as? [[String: Any]]) ?? []).first { $0["name"] as? String == name }?["status"] as? String
        }
        if payloads.count == 2 {
            #expect(status(payloads[0], "documents_sample") == "failed" && status(payloads[0], "restore") == "passed")
            #expect(status(payloads[1], "restore") == "failed" && status(payloads[1], "amcheck") == "not_run")
        }
        #expect(try f.expectOK(["--json", "evidence", "verify"]).json()?["verifiedRecords"] as? Int == 2)
        #expect(try f.tresor.run(["drill", "status"]).code == 3)
    }

    @Test func aDrillKilledWithSIGKILLLeavesItsServerAndScratchForDrillCleanToRemove() throws {
        let f = try DrillFixture()
        try f.cluster.stop()
        let p = f.tresor.start(["drill", "run", "acme", "--target", "latest"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait until the scratch server runs, then kill the drill.
        let deadline = Date().addingTimeInterval(120)
        func ready() -> Bool {
            f.scratchLeftovers().contains { d in
                let log = (try? String(contentsOfFile: f.home + "/scratch/" + d + "/server/sock/server.log", encoding: .utf8)) ?? ""
                return log.contains("database system is ready to accept connections")
            }
        }
        while !ready() && p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        try #require(p.isRunning, "the drill ended before its scratch server was seen")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(!f.scratchLeftovers().isEmpty)
        #expect(!f.scratchServers().isEmpty)

        let clean = try f.expectOK(["--json", "drill", "clean"])
        #expect((clean.json()?["directories"] as? [String])?.count == 1, "\(clean.stdout)")
        #expect(clean.json()?["serversStopped"] as? Int == 1, "\(clean.stdout)")
        #expect(f.scratchLeftovers().isEmpty)
        #expect(f.scratchServers().isEmpty)
        // Nothing for the next drill to remove; it passes.
        let next = try f.tresor.run(["--json", "drill", "run", "acme", "--target", "latest"])
        #expect(next.code == 0, "\(next.stdout)")
        #expect((next.json()?["cleaned"] as? [String: Any])?["directories"] as? [String] == [])
    }
}
