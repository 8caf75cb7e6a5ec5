import Foundation
import Testing
import TresorStore
import TresorTestSupport

/// Object storage as operators really run it: keys that may not list or read everything,
/// offsite copies checked on their own, errors a script can read.
@Suite(.serialized) struct S3RealityTests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 40; o.largeFiles = 1; o.largeFileSize = 2 << 20; return o
    }()

    /// wal-push with a WAL key for which a HEAD or GET of a missing key answers 403 (no
    /// unconditional ListBucket on AWS or RGW; here a SeaweedFS identity that may write and list
    /// the tenant's WAL prefix but not read it): the first segment is stored. The push writes
    /// with a conditional put, and the one read it makes (the tenant's cluster record, absent on
    /// the first push) is proved absent by the prefix listing that `pg setup`'s policy allows.
    @Test func walPushDoesNotNeedA404ForAMissingKey() throws {
        let server = try SeaweedServer.shared()
        let dir = TempDirectory("tresor-s3wal")
        var tresor = TresorProcess(home: dir.sub("home").path)
        tresor.environment = server.credentialsEnvironment
        let cluster = try ScratchCluster(label: "s3wal")  // initdb leaves the first segment in pg_wal
        for args in [
            ["init"], ["store", "add", "s3", "--url", server.url(bucket: SeaweedServer.walBucket), "--region", "eu"],
            ["tenant", "add", "wlist", "--region", "eu", "--store", "s3"],
        ] {
            let r = try tresor.run(args)
            #expect(r.code == 0, "\(args): \(r.stderr)")
        }
        let credentials = dir.sub("wal-credentials").path
        try "[default]\naws_access_key_id = \(server.walListAccessKey)\naws_secret_access_key = \(server.walListSecretKey)\n"
            .write(toFile: credentials, atomically: true, encoding: .utf8)
        let setup = try tresor.run(["--json", "pg", "setup", "wlist", "--wal-credentials", credentials])
        #expect(setup.code == 0, "\(setup.stderr)")
        let scope = try #require(setup.json()?["s3Scope"] as? String)
        #expect(scope.contains("s3:PutObjectAcl") && scope.contains("s3:prefix"), "pg setup names the exact policy: \(scope)")

        let segments = try FileManager.default.contentsOfDirectory(atPath: cluster.dataDirectory + "/pg_wal").filter { $0.count == 24 }
        let segment = try #require(segments.sorted().first)
        var asPostgres = tresor
        asPostgres.environment = [:]  // the key pg setup stored, as archive_command would use it
        let push = try asPostgres.run(["--json", "pg", "wal-push", "wlist", cluster.dataDirectory + "/pg_wal/" + segment])
        #expect(push.code == 0, "\(push.stderr)")
        let operatorStore = try StoreURL.parse(server.url(bucket: SeaweedServer.walBucket))
            .open(create: false, credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: server.secretKey))
        #expect(try operatorStore.list(prefix: "tenants/wlist/wal/").contains { $0.key.hasSuffix("/" + segment) })
    }

    /// A key that may list the packs but not read them: check fails (exit 1, with a hint about
    /// credentials and policy), it does not call the repository damaged (exit 3).
    @Test func aCheckThatMayNotReadAPackFailsInsteadOfReportingDamage() throws {
        let server = try SeaweedServer.shared()
        let dir = TempDirectory("tresor-s3check")
        var tresor = TresorProcess(home: dir.sub("home").path)
        tresor.environment = server.credentialsEnvironment
        try CorpusBuilder.build(at: dir.sub("docs"), options: Self.small)
        for args in [
            ["init"], ["store", "add", "s3", "--url", server.url(bucket: SeaweedServer.restrictedBucket, prefix: "tresor"), "--region", "eu"],
            ["tenant", "add", "acme", "--region", "eu", "--store", "s3", "--docs", dir.sub("docs").path],
            ["docs", "backup", "acme"], ["check", "acme", "--read-data"],
        ] {
            let r = try tresor.run(args)
            #expect(r.code == 0, "\(args): \(r.stderr)")
        }
        var limited = tresor
        limited.environment = ["AWS_ACCESS_KEY_ID": server.noPacksAccessKey, "AWS_SECRET_ACCESS_KEY": server.noPacksSecretKey]
        let snapshots = try limited.run(["snapshots", "acme"])
        #expect(snapshots.code == 0, "the key reads everything but the packs: \(snapshots.stderr)")
        let r = try limited.run(["check", "acme", "--read-data"])
        #expect(r.code == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("403") && r.stderr.contains("tenants/acme/data/") && r.stderr.contains("hint: "), "\(r.stderr)")
        #expect(!r.stdout.contains("damaged") && !r.stderr.contains("damaged"), "\(r.stdout) \(r.stderr)")
    }

    /// `check --store` and `snapshots --store` read the offsite copy itself: damage there is
    /// found there, not hidden behind a healthy primary.
    @Test func checkAndSnapshotsRunAgainstTheOffsiteCopy() throws {
        let server = try SeaweedServer.shared()
        let f = try S3Fixture(server: server, corpus: Self.small)
        let offBucket = "off-" + UUID().uuidString.prefix(8).lowercased()
        try f.expectOK(["store", "add", "off", "--url", server.url(bucket: offBucket), "--region", "eu-central"])
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["replicate", "acme", "--to", "off"])
        let primary = try #require(try f.expectOK(["--json", "snapshots", "acme"]).jsonArray())
        let offsite = try #require(try f.expectOK(["--json", "snapshots", "acme", "--store", "off"]).jsonArray())
        #expect(offsite.map { $0["id"] as? String } == primary.map { $0["id"] as? String } && !offsite.isEmpty)
        try f.expectOK(["check", "acme", "--read-data", "--store", "off"])

        // A pack lost from the offsite copy only: the primary checks clean, the copy does not.
        let off = try f.store(bucket: offBucket, prefix: "")
        let victim = try #require(try off.list(prefix: "tenants/acme/data/").first)
        try off.delete(victim.key)
        try f.expectOK(["check", "acme"])
        let r = try f.tresor.run(["check", "acme", "--store", "off"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains(String(victim.key.split(separator: "/").last!)), "\(r.stdout)")
        // An empty offsite store: a new tenant has no backups there yet.
        let none = try f.tresor.run(["snapshots", "acme", "--store", "nosuch"])
        #expect(none.code == 2 && none.stderr.contains("unknown store"), "\(none.stderr)")
    }

    @Test func jsonErrorsGiveTheExitCodeAsANumber() throws {
        let f = try Fixture(corpus: Self.small)
        let r = try f.tresor.run(["--json", "snapshots", "nosuch"])
        #expect(r.code == 2)
        let obj = try #require(r.json())
        #expect(obj["exit_code"] as? Int == 2, "\(r.stdout)")
        #expect(obj["exit_code"] is NSNumber && !(obj["exit_code"] is String))
        #expect((obj["error"] as? String)?.contains("nosuch") == true && obj["hint"] is String)
    }
}
