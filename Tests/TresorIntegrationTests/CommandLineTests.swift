import Foundation
import Testing
import TresorTestSupport

/// Every exit code of the contract, produced by the real binary.
@Suite(.serialized) struct CommandLineTests {
    @Test func badInputExitsTwoWithOneLineAndAHint() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 5; o.largeFiles = 0; return o
            }())
        let cases: [([String], String)] = [
            (["docs", "backup", "nobody"], "unknown tenant 'nobody'"),
            (["store", "add", "s3x", "--url", "ftp://host/x", "--region", "eu"], "not supported"),
            (["store", "add", "rel", "--url", "file://relative", "--region", "eu"], "absolute path"),
            (["tenant", "add", "bad name", "--region", "eu", "--store", "local"], "invalid tenant name"),
            (["tenant", "add", "beta", "--region", "eu-central", "--store", "local", "--docs", "/does/not/exist"], "does not exist"),
            (["tenant", "add", "gamma", "--region", "eu-central", "--store", "nostore"], "unknown store"),
            (["docs", "restore", "acme"], "missing"),
            (["frobnicate"], "unexpected argument"),
            (["check", "--read-data-subset", "150"], "between 0 and 100"),
            (["--now", "tomorrow-ish", "tenant", "list"], "cannot read time"),
            (["pg", "stream", "acme"], "has no postgresql dsn"),
            (["pg", "setup", "acme", "--wal-credentials", "/nowhere"], "--wal-credentials is for s3 stores"),
        ]
        for (args, text) in cases {
            let r = try f.tresor.run(args)
            #expect(r.code == 2, "\(args): exit \(r.code) \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.first?.hasPrefix("error: ") == true, "\(args): \(r.stderr)")
            #expect(lines.first?.lowercased().contains(text.lowercased()) == true, "\(args): \(r.stderr)")
        }
    }

    @Test func regionsAreEnforcedUnlessApproved() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 5; o.largeFiles = 0; return o
            }())
        try f.expectOK(["store", "add", "us", "--url", "file://" + f.dir.sub("us-store").path, "--region", "us-east"])
        let refused = try f.tresor.run(["tenant", "add", "beta", "--region", "eu-central", "--store", "us", "--docs", f.docs.path])
        #expect(refused.code == 2)
        #expect(refused.stderr.contains("beta") && refused.stderr.contains("eu-central") && refused.stderr.contains("'us'"))
        #expect(!FileManager.default.fileExists(atPath: f.dir.sub("us-store/tenants").path), "nothing written")
    }

    @Test func wrongMasterKeyAndBrokenConfigExitTwo() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 5; o.largeFiles = 0; return o
            }())
        try f.expectOK(["docs", "backup", "acme"])
        let keyFile = f.home + "/keys/master.key"
        let attrs = try FileManager.default.attributesOfItem(atPath: keyFile)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        // init never overwrites the master key.
        let original = try String(contentsOfFile: keyFile, encoding: .utf8)
        try f.expectOK(["init"])
        #expect(try String(contentsOfFile: keyFile, encoding: .utf8) == original)

        try String(repeating: "ab", count: 32).write(toFile: keyFile, atomically: true, encoding: .utf8)
        chmod(keyFile, 0o600)
        let wrong = try f.tresor.run(["snapshots", "acme"])
        #expect(wrong.code == 2)
        #expect(wrong.stderr.contains("wrong master key"))
        #expect(!wrong.stderr.contains(original.trimmingCharacters(in: .whitespacesAndNewlines)))

        try "[keys\nbroken".write(toFile: f.home + "/tresor.toml", atomically: true, encoding: .utf8)
        let broken = try f.tresor.run(["tenant", "list"])
        #expect(broken.code == 2)
        #expect(broken.stderr.contains("tresor.toml:1"))

        let nohome = TresorProcess(home: f.dir.sub("never-initialised").path)
        let r = try nohome.run(["tenant", "list"])
        #expect(r.code == 2 && r.stderr.contains("hint: tresor --home"))
        // archive_command runs as the PostgreSQL OS user, which must never make a home of its
        // own: its hint names the operator's pg setup instead of init.
        let push = try nohome.run(["pg", "wal-push", "acme", "/nonexistent/000000010000000000000001"])
        #expect(push.code != 0)
        #expect(
            push.stderr.contains("hint: give archive_command and restore_command the operator's --home as tresor pg setup acme prints them"),
            "\(push.stderr)")
        #expect(!push.stderr.contains("hint: tresor --home"), "\(push.stderr)")
    }

    @Test func masterKeyFromACommand() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 5; o.largeFiles = 0; return o
            }())
        let keyFile = f.home + "/keys/master.key"
        let moved = f.dir.sub("kms-key").path
        try FileManager.default.moveItem(atPath: keyFile, toPath: moved)
        var config = try String(contentsOfFile: f.home + "/tresor.toml", encoding: .utf8)
        config = config.replacingOccurrences(of: "master_key_file = \"keys/master.key\"", with: "master_key_command = \"cat \(moved)\"")
        try config.write(toFile: f.home + "/tresor.toml", atomically: true, encoding: .utf8)
        try f.expectOK(["docs", "backup", "acme"])
        let log = try f.expectOK(["--json", "snapshots", "acme"])
        let key = try String(contentsOfFile: moved, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!log.stdout.contains(key))
        #expect(!FileManager.default.fileExists(atPath: keyFile))
    }

    @Test func theClockComesFromNow() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 5; o.largeFiles = 0; return o
            }())
        try f.expectOK(["--now", "2026-01-15T08:00:00Z", "docs", "backup", "acme"])
        var env = f.tresor
        env.environment["TRESOR_NOW"] = "2026-02-15T08:00:00Z"
        let r = try env.run(["docs", "backup", "acme"])
        #expect(r.code == 0)
        let list = try #require(try f.expectOK(["--json", "snapshots", "acme"]).jsonArray())
        #expect(list.compactMap { $0["time"] as? String }.map { String($0.prefix(10)) } == ["2026-01-15", "2026-02-15"])
        // A date selects the newest snapshot on or before it.
        let (restored, rr) = try f.restore("2026-01-31")
        #expect(rr.code == 0)
        #expect(FileManager.default.fileExists(atPath: restored.path))
        let (_, none) = try f.restore("2025-12-31")
        #expect(none.code == 2)
    }
}
