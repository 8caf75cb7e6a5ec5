import Foundation
import Testing
import TresorTestSupport

/// Secrets and permissions of an installation: what other users of the machine can read, and
/// where a database password may (not) end up.
@Suite(.serialized) struct SecretsTests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 10; o.largeFiles = 0; return o
    }()

    func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    /// The master key command runs as tresor's child and reads its parent's status: the umask
    /// and the core-file limit tresor set for itself.
    @Test func theProcessRunsWithUmask077AndNoCoreFiles() throws {
        let f = try Fixture(corpus: Self.small)
        let status = f.dir.sub("status").path, limits = f.dir.sub("limits").path
        let config = try String(contentsOfFile: f.home + "/tresor.toml", encoding: .utf8)
            .replacingOccurrences(
                of: "master_key_file = \"keys/master.key\"",
                with: "master_key_command = \"cat /proc/$PPID/status > \(status); cat /proc/$PPID/limits > \(limits); cat \(f.home)/keys/master.key\"")
        try config.write(toFile: f.home + "/tresor.toml", atomically: true, encoding: .utf8)
        try f.expectOK(["docs", "backup", "acme"])
        let st = try String(contentsOfFile: status, encoding: .utf8)
        #expect(st.contains("Umask:\t0077"), "\(st)")
        let core = try #require(try String(contentsOfFile: limits, encoding: .utf8).split(separator: "\n").first { $0.hasPrefix("Max core file size") })
        #expect(core.split(separator: " ").dropFirst(4).prefix(2) == ["0", "0"], "\(core)")
    }

    /// Run as the postgres user (as archive_command is), tresor is not dumpable: the kernel then
    /// gives its /proc entries to root, so no other process of that user can read its memory
    /// (or a core file) with the keys in it. Its child (the master key command) sees that.
    @Test func tresorIsNotDumpableSoItsUsersOtherProcessesCannotReadItsMemory() throws {
        let dir = TempDirectory("tresor-dump")
        let owner = dir.sub("pg")
        try FileManager.default.createDirectory(at: owner.appendingPathComponent("docs"), withIntermediateDirectories: true)
        try "x".write(to: owner.appendingPathComponent("docs/a.txt"), atomically: true, encoding: .utf8)
        for p in [owner.path, owner.path + "/docs", owner.path + "/docs/a.txt"] { try ScratchCluster.handToPostgres(p) }
        let home = owner.path + "/home", seen = owner.path + "/seen"
        func asPostgres(_ args: [String]) throws {
            try ScratchCluster.run(TresorProcess.binary, ["--home", home] + args, asPostgres: true)
        }
        try asPostgres(["init"])
        try asPostgres(["store", "add", "local", "--url", "file://" + owner.path + "/store", "--region", "eu"])
        try asPostgres(["tenant", "add", "acme", "--region", "eu", "--store", "local", "--docs", owner.path + "/docs"])
        let config = try String(contentsOfFile: home + "/tresor.toml", encoding: .utf8)
            .replacingOccurrences(
                of: "master_key_file = \"keys/master.key\"",
                with: "master_key_command = \"stat -c %u /proc/$PPID/status > \(seen); cat \(home)/keys/master.key\"")
        try config.write(toFile: home + "/tresor.toml", atomically: false, encoding: .utf8)  // keeps its owner
        try asPostgres(["docs", "backup", "acme"])
        let postgresUID = try #require(getpwnam("postgres")).pointee.pw_uid
        #expect(postgresUID != 0)
        #expect(try String(contentsOfFile: seen, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test func initRefusesAHomeOthersCanReadAndCreatesAClosedOne() throws {
        let dir = TempDirectory("tresor-home")
        let home = dir.sub("home").path
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let tresor = TresorProcess(home: home)
        let refused = try tresor.run(["init"])
        #expect(refused.code == 2)
        #expect(refused.stderr.contains("hint: chmod 700 \(home)"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: home + "/keys"), "nothing was written into the open home")

        let fresh = dir.sub("fresh").path
        let created = try TresorProcess(home: fresh).run(["init"])
        #expect(created.code == 0, "\(created.stderr)")
        #expect(try mode(fresh) == 0o700)
        #expect(try mode(fresh + "/keys") == 0o700)
        for file in ["catalog.sqlite", "tresor.toml", "keys/master.key", "keys/evidence.key"] {
            #expect(try mode(fresh + "/" + file) == 0o600, "\(file)")
        }
    }

    @Test func aMasterKeyFileOthersCanReadIsRefused() throws {
        let f = try Fixture(corpus: Self.small)
        let key = f.home + "/keys/master.key"
        chmod(key, 0o640)
        let r = try f.tresor.run(["docs", "backup", "acme"])
        #expect(r.code == 2)
        #expect(r.stderr.contains("hint: chmod 600 \(key)"), "\(r.stderr)")
        chmod(key, 0o600)
        try f.expectOK(["docs", "backup", "acme"])
    }

    /// A database password: refused on the command line in any spelling libpq accepts, taken
    /// from standard input into a 0600 passfile, used for real by a base backup against a
    /// server that requires it, and never in any output or in the catalog.
    @Test func aDSNPasswordNeverReachesACommandLineTheCatalogOrAnyOutput() throws {
        let password = "pw-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let dir = TempDirectory("tresor-pgpass")
        let home = dir.sub("home").path
        let tresor = TresorProcess(home: home)
        let cluster = try ScratchCluster(label: "pgpass")
        try cluster.start()
        try cluster.sql("CREATE ROLE backup LOGIN SUPERUSER REPLICATION PASSWORD '\(password)'")
        let hba = cluster.dataDirectory + "/pg_hba.conf"
        let rules = "host all backup 127.0.0.1/32 scram-sha-256\nhost replication backup 127.0.0.1/32 scram-sha-256\n"
        try (rules + String(contentsOfFile: hba, encoding: .utf8)).write(toFile: hba, atomically: true, encoding: .utf8)
        _ = try ScratchCluster.run("/bin/chown", ["postgres", hba], asPostgres: false)
        try cluster.sql("SELECT pg_reload_conf()")

        var outputs: [TresorProcess.Result] = []
        func run(_ args: [String], stdin: String? = nil) throws -> TresorProcess.Result {
            let r = try tresor.run(args, stdin: stdin)
            outputs.append(r)
            return r
        }
        let base = "host=127.0.0.1 port=\(cluster.port) user=backup dbname=postgres"
        #expect(try run(["init"]).code == 0)
        #expect(try run(["store", "add", "local", "--url", "file://" + dir.sub("store").path, "--region", "eu"]).code == 0)
        for dsn in [
            "\(base) password=\(password)", "\(base) password = '\(password)'",
            "postgresql://backup:\(password)@127.0.0.1:\(cluster.port)/postgres",
        ] {
            let r = try run(["--json", "tenant", "add", "acme", "--region", "eu", "--store", "local", "--pg", dsn])
            #expect(r.code == 2 && r.stderr.contains("--pg-password-stdin"), "\(r.stderr)")
        }
        #expect(try run(["--json", "tenant", "list"]).jsonArray()?.isEmpty == true)

        let added = try run(
            ["--json", "tenant", "add", "acme", "--region", "eu", "--store", "local", "--pg", base, "--pg-password-stdin"],
            stdin: password + "\n")
        #expect(added.code == 0, "\(added.stderr)")
        let passfile = home + "/secrets/pg/acme.pgpass"
        #expect(try mode(passfile) == 0o600)
        #expect(try String(contentsOfFile: passfile, encoding: .utf8) == "*:*:*:*:\(password)\n")

        let setup = try run(["--json", "pg", "setup", "acme"])
        let archiveCommand = try #require((setup.json()?["settings"] as? [String: String])?["archive_command"], "\(setup.stderr)")
        // pg setup opened the home to traverse (for the postgres user's own directory) and no more.
        #expect(try mode(home) == 0o711)
        #expect(try mode(home + "/keys") == 0o700 && mode(home + "/secrets") == 0o700 && mode(home + "/catalog.sqlite") == 0o600)
        #expect(try mode(home + "/pg/acme") == 0o750 && mode(home + "/pg/acme/wal.key") == 0o640)
        try cluster.stop()
        try cluster.appendSettings(["archive_mode": "on", "archive_command": "'\(archiveCommand)'"])
        try cluster.start()
        let backup = try run(["--json", "pg", "basebackup", "acme"])
        #expect(backup.code == 0, "the passfile's password opened the connection: \(backup.stderr)")
        _ = try run(["--json", "tenant", "list"])
        _ = try run(["tenant", "list"])

        // Or the operator's own libpq passfile (PGPASSFILE): the DSN stays without a password.
        let own = dir.sub("operator.pgpass").path
        try "127.0.0.1:\(cluster.port):*:backup:\(password)\n".write(toFile: own, atomically: true, encoding: .utf8)
        chmod(own, 0o600)
        #expect(try run(["tenant", "add", "beta", "--region", "eu", "--store", "local", "--pg", base]).code == 0)
        var withPassfile = tresor
        withPassfile.environment = ["PGPASSFILE": own]
        let stream = withPassfile.start(["pg", "stream", "beta"])
        stream.standardOutput = FileHandle.nullDevice
        stream.standardError = FileHandle.nullDevice
        try stream.run()
        let slot = "SELECT coalesce((SELECT active::text FROM pg_replication_slots WHERE slot_name = 'tresor_beta'), 'none')"
        #expect(try cluster.waitFor(slot, toBe: "true", seconds: 30) == "true", "pg stream logged in with the PGPASSFILE password")
        stream.terminate()
        stream.waitUntilExit()
        try cluster.stop()
        let down = try run(["--json", "pg", "basebackup", "acme"])  // fails: server down; the message names the DSN
        #expect(down.code != 0)

        for r in outputs {
            #expect(!r.stdout.contains(password) && !r.stderr.contains(password), "password in output: \(r.stdout) \(r.stderr)")
        }
        for file in try FileManager.default.contentsOfDirectory(atPath: home) where file.hasPrefix("catalog.sqlite") {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: home + "/" + file))
            #expect(bytes.range(of: Data(password.utf8)) == nil, "password in \(file)")
        }
    }
}
