import Foundation
import Testing
import TresorStore
import TresorTestSupport

/// A fresh home whose tenant `acme` backs up to an S3 store on a real SeaweedFS server.
final class S3Fixture: @unchecked Sendable {
    let dir = TempDirectory("tresor-s3")
    let server: SeaweedServer
    var tresor: TresorProcess
    let bucket = "b-" + UUID().uuidString.prefix(8).lowercased()
    var home: String { dir.sub("home").path }
    var docs: URL { dir.sub("docs") }
    var stats: String { dir.sub("stats.json").path }

    init(server: SeaweedServer, corpus: CorpusBuilder.Options = CorpusBuilder.Options(), urlExtra: String = "") throws {
        self.server = server
        tresor = TresorProcess(home: dir.sub("home").path)
        tresor.environment = server.credentialsEnvironment.merging(["TRESOR_STORE_STATS": dir.sub("stats.json").path]) { $1 }
        try CorpusBuilder.build(at: dir.sub("docs"), options: corpus)
        try expectOK(["init"])
        try expectOK(["store", "add", "s3", "--url", server.url(bucket: bucket, prefix: "tresor", extra: urlExtra), "--region", "eu-central"])
        try expectOK(["tenant", "add", "acme", "--region", "eu-central", "--store", "s3", "--docs", docs.path])
    }

    @discardableResult
    func expectOK(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> TresorProcess.Result {
        let r = try tresor.run(args)
        #expect(r.code == 0, "tresor \(args.joined(separator: " ")) exited \(r.code): \(r.stderr)", sourceLocation: sourceLocation)
        return r
    }

    /// The S3 requests the last command sent (from TRESOR_STORE_STATS).
    func lastRequests() throws -> Int {
        let data = try Data(contentsOf: URL(fileURLWithPath: stats))
        return try #require((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["requests"] as? Int)
    }

    /// The store as the test sees it, bypassing Tresor's CLI.
    func store(bucket: String? = nil, prefix: String = "tresor") throws -> S3Store {
        guard case .s3(let loc) = try StoreURL.parse(server.url(bucket: bucket ?? self.bucket, prefix: prefix)) else {
            throw StoreError(.badURL, "not s3")
        }
        return try S3Store(loc, credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: server.secretKey))
    }

    /// Overrides the policy's `store.incomplete_upload_age` with a later policy file.
    func setIncompleteUploadAge(_ age: String) throws {
        try "[store]\nincomplete_upload_age = \"\(age)\"\n".write(
            toFile: home + "/policies/zz-upload-age.toml", atomically: true, encoding: .utf8)
    }

    func restore(_ tenant: String = "acme") throws -> (URL, TresorProcess.Result) {
        let target = dir.sub("restore-\(UUID().uuidString.prefix(6))")
        let r = try tresor.run(["docs", "restore", tenant, "--to", target.path])
        return (target.appendingPathComponent("docs"), r)
    }
}

@Suite(.serialized) struct S3Tests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 300; o.largeFiles = 2; o.largeFileSize = 3 << 20; return o
    }()

    @Test func documentsBackUpRestoreAndCheckAgainstS3() throws {
        let f = try S3Fixture(server: try SeaweedServer.shared())
        try f.expectOK(["docs", "backup", "acme"])
        #expect(try f.lastRequests() > 0)
        #expect(try !f.store().list(prefix: "tenants/acme/data/").isEmpty, "packs landed in the bucket under the prefix")
        // An upload a killed run left behind is aborted by the next check once it is older than
        // the policy's store.incomplete_upload_age (here lowered to 0s).
        _ = try f.store().createMultipartUpload("tenants/acme/data/00/orphan")
        #expect(try f.store().incompleteUploads(prefix: "tenants/acme/") == ["tenants/acme/data/00/orphan"])
        try f.setIncompleteUploadAge("0s")
        try f.expectOK(["check", "acme", "--read-data"])
        #expect(try f.store().incompleteUploads(prefix: "tenants/acme/").isEmpty)
        let (restored, r) = try f.restore()
        #expect(r.code == 0, "\(r.stderr)")
        #expect(TreeComparer.differences(f.docs, restored) == [])
        // An unchanged second backup uploads no pack.
        let packs = try f.store().list(prefix: "tenants/acme/data/").count
        try f.expectOK(["docs", "backup", "acme"])
        #expect(try f.store().list(prefix: "tenants/acme/data/").count == packs)
    }

    /// Another host's upload in flight (seconds old) must survive this host's backup, check and
    /// replicate: they abort only uploads older than the policy's age (24h by default).
    @Test func anotherHostsUploadInFlightIsNotAbortedByBackupCheckOrReplicate() throws {
        let server = try SeaweedServer.shared()
        let f = try S3Fixture(server: server, corpus: Self.small)
        let offBucket = "off-" + UUID().uuidString.prefix(8).lowercased()
        try f.expectOK(["store", "add", "off", "--url", server.url(bucket: offBucket, prefix: "tresor"), "--region", "eu-central"])
        try f.expectOK(["docs", "backup", "acme"])
        let inFlight = "tenants/acme/data/00/other-host"
        _ = try f.store().createMultipartUpload(inFlight)
        _ = try f.store(bucket: offBucket).createMultipartUpload(inFlight)
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["check", "acme"])
        try f.expectOK(["replicate", "acme", "--to", "off"])
        #expect(try f.store().incompleteUploads(prefix: "tenants/acme/") == [inFlight])
        #expect(try f.store(bucket: offBucket).incompleteUploads(prefix: "tenants/acme/") == [inFlight])

        // `store clean` keeps it too, and removes it (counted) once the policy's age says it is old.
        let kept = try f.expectOK(["--json", "store", "clean", "s3"])
        #expect(kept.stdout.contains("\"removed\" : 0") || kept.stdout.contains("\"removed\":0"), "\(kept.stdout)")
        #expect(try f.store().incompleteUploads(prefix: "") == [inFlight])
        try f.setIncompleteUploadAge("0s")
        let cleaned = try f.expectOK(["--json", "store", "clean", "s3"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(cleaned.stdout.utf8)) as? [String: Any])
        #expect(json["removed"] as? Int == 1 && json["kind"] as? String == "multipart uploads", "\(cleaned.stdout)")
        #expect(try f.store().incompleteUploads(prefix: "").isEmpty)
        #expect(try f.store(bucket: offBucket).incompleteUploads(prefix: "tenants/acme/") == [inFlight], "only the named store is cleaned")
    }

    @Test func replicateCopiesWhatTheOffsiteStoreLacksAndVerifiesIt() throws {
        let server = try SeaweedServer.shared()
        let f = try S3Fixture(server: server, corpus: Self.small)
        let offBucket = "off-" + UUID().uuidString.prefix(8).lowercased()
        try f.expectOK(["store", "add", "off", "--url", server.url(bucket: offBucket), "--region", "eu-central"])
        try f.expectOK(["docs", "backup", "acme"])
        let first = try #require(try f.expectOK(["--json", "replicate", "acme", "--to", "off"]).json())
        let source = try f.store().list(prefix: "tenants/acme/")
        let copy = try f.store(bucket: offBucket, prefix: "").list(prefix: "tenants/acme/")
        #expect(copy == source)
        #expect(first["copied"] as? Int == source.count)
        for o in source { #expect(try f.store(bucket: offBucket, prefix: "").get(o.key) == f.store().get(o.key)) }

        // Incremental: only the new backup's objects travel; a lost object is copied again.
        try Data("new document".utf8).write(to: f.docs.appendingPathComponent("contracts/new.txt"))
        try f.expectOK(["docs", "backup", "acme"])
        let victim = try #require(copy.first { $0.key.contains("/data/") })
        try f.store(bucket: offBucket, prefix: "").delete(victim.key)
        let second = try #require(try f.expectOK(["--json", "replicate", "acme", "--to", "off"]).json())
        let now = try f.store().list(prefix: "tenants/acme/")
        #expect(second["copied"] as? Int == now.count - source.count + 1)
        #expect(try f.store(bucket: offBucket, prefix: "").list(prefix: "tenants/acme/") == now)

        // A tenant's offsite store is the default target.
        try f.expectOK(["tenant", "add", "beta", "--region", "eu-central", "--store", "s3", "--offsite", "off", "--docs", f.docs.path])
        try f.expectOK(["docs", "backup", "beta"])
        try f.expectOK(["replicate", "beta"])
        #expect(try f.store(bucket: offBucket, prefix: "").list(prefix: "tenants/beta/") == f.store().list(prefix: "tenants/beta/"))
        let none = try f.tresor.run(["replicate", "acme"])
        #expect(none.code == 2 && none.stderr.contains("no offsite store"), "\(none.stderr)")
    }

    @Test func regionRefusalSendsNothingAndAnApprovalLetsItThrough() throws {
        let server = try SeaweedServer.shared()
        let f = try S3Fixture(server: server, corpus: Self.small)
        let usBucket = "us-" + UUID().uuidString.prefix(8).lowercased()
        try f.expectOK(["store", "add", "us", "--url", server.url(bucket: usBucket), "--region", "us-east"])
        try f.expectOK(["docs", "backup", "acme"])

        let refusedTenant = try f.tresor.run(["tenant", "add", "beta", "--region", "eu-central", "--store", "us", "--docs", f.docs.path])
        #expect(refusedTenant.code == 2)
        #expect(try f.lastRequests() == 0, "refused before any request")
        let refusedOffsite = try f.tresor.run(["tenant", "add", "gamma", "--region", "eu-central", "--store", "s3", "--offsite", "us"])
        #expect(refusedOffsite.code == 2, "\(refusedOffsite.stderr)")
        let refused = try f.tresor.run(["replicate", "acme", "--to", "us"])
        #expect(refused.code == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("region") && refused.stderr.contains("hint: "))
        #expect(try f.lastRequests() == 0, "refused before any request")
        #expect(try f.store(bucket: usBucket, prefix: "").list(prefix: "").isEmpty)

        try f.expectOK(["region", "approve", "acme", "--store", "us", "--by", "dpo@example.com", "--reason", "customer asked for a US copy"])
        try f.expectOK(["replicate", "acme", "--to", "us"])
        #expect(try f.store(bucket: usBucket, prefix: "").list(prefix: "tenants/acme/") == f.store().list(prefix: "tenants/acme/"))
    }

    @Test func credentialsNeverAppearInAnyOutput() throws {
        let server = try SeaweedServer.shared()
        let f = try S3Fixture(server: server, corpus: Self.small)
        var outputs: [TresorProcess.Result] = []
        func run(_ args: [String], env: [String: String]? = nil) throws {
            var p = f.tresor
            if let env { p.environment = env }
            outputs.append(try p.run(args))
            outputs.append(try p.run(["--json"] + args))
        }
        try run(["docs", "backup", "acme"])
        try run(["store", "list"])
        try run(["tenant", "list"])
        try run(["snapshots", "acme"])
        try run(["check", "acme", "--read-data"])
        try run(["store", "add", "x", "--url", server.url(bucket: "xbucket"), "--region", "eu-central"])
        // Failures: a wrong secret (the server refuses the signature), and no credentials at all.
        var wrong = server.credentialsEnvironment
        wrong["AWS_SECRET_ACCESS_KEY"] = server.secretKey + "-wrong"
        try run(["snapshots", "acme"], env: wrong)
        #expect(outputs.last?.code == 1, "\(outputs.last?.stderr ?? "")")
        try run(["snapshots", "acme"], env: [:])
        #expect(outputs.last?.code == 2)
        #expect(outputs.last?.stderr.contains("no s3 credentials") == true)
        // A URL that tries to carry a secret is refused without echoing it.
        try run(["store", "add", "y", "--url", "s3://ybucket?endpoint=\(server.endpoint)&secret_key=\(server.secretKey)", "--region", "eu"])
        #expect(outputs.last?.code == 2)

        // The config's credentials file works the same and is not echoed either.
        let file = f.dir.sub("creds")
        try "[default]\naws_access_key_id = \(server.accessKey)\naws_secret_access_key = \(server.secretKey)\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let config = try String(contentsOfFile: f.home + "/tresor.toml", encoding: .utf8)
        try (config + "\n[s3]\ncredentials_file = \"\(file.path)\"\n").write(toFile: f.home + "/tresor.toml", atomically: true, encoding: .utf8)
        try run(["snapshots", "acme"], env: [:])
        #expect(outputs.last?.code == 0, "\(outputs.last?.stderr ?? "")")

        for r in outputs {
            #expect(!r.stdout.contains(server.secretKey) && !r.stderr.contains(server.secretKey), "secret in output: \(r.stdout) \(r.stderr)")
        }
    }

    /// The real server is killed while a backup uploads; the backup fails cleanly (exit 1 after its
    /// retries), and once the server is back the next backup and check succeed and no multipart
    /// upload is left under the tenant's prefix.
    @Test func aServerKilledDuringAnUploadLeavesNothingBehindAfterTheNextBackup() throws {
        let server = try SeaweedServer()
        defer { server.stop() }
        let corpus: CorpusBuilder.Options = {
            var o = CorpusBuilder.Options(); o.smallFiles = 50; o.largeFiles = 6; o.largeFileSize = 12 << 20; return o
        }()
        // Small parts, so every pack is a multipart upload.
        let f = try S3Fixture(server: server, corpus: corpus, urlExtra: "&part_size=\(5 << 20)&multipart_threshold=\(5 << 20)")
        let s3 = try f.store()
        let p = f.tresor.start(["docs", "backup", "acme"])
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        var sawUpload = false
        while Date() < deadline && p.isRunning {
            if (try? s3.incompleteUploads(prefix: "tenants/acme/"))?.isEmpty == false {
                sawUpload = true
                break
            }
            usleep(20_000)
        }
        server.kill()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(sawUpload, "the backup was uploading when the server died")
        #expect(p.terminationStatus == 1, "\(stderr)")
        #expect(stderr.contains("gave up after"), "\(stderr)")
        #expect(!stderr.contains(server.secretKey))

        try server.start()
        // The S3 port answers before the restarted volume server serves reads again (a loaded
        // machine showed 500s for several seconds): wait until a stored object reads back, so the
        // backup below measures Tresor, not weed's start-up.
        let readable = Date().addingTimeInterval(60)
        while Date() < readable, (try? s3.get("tenants/acme/config")) == nil { usleep(200_000) }
        try f.setIncompleteUploadAge("0s")
        try f.expectOK(["docs", "backup", "acme"])
        #expect(try s3.incompleteUploads(prefix: "tenants/acme/").isEmpty, "no orphan multipart uploads")
        try f.expectOK(["check", "acme", "--read-data"])
        let (restored, r) = try f.restore()
        #expect(r.code == 0, "\(r.stderr)")
        #expect(TreeComparer.differences(f.docs, restored) == [])
    }
}
