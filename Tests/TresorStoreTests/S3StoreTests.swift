import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorStore
import TresorTestSupport

/// S3Store against a real SeaweedFS (started by the tests, shared by this suite).
@Suite struct S3StoreTests {
    static func bucket() -> String { "t-" + UUID().uuidString.prefix(8).lowercased() }

    func open(
        _ server: SeaweedServer, bucket: String = bucket(), prefix: String = "", extra: String = "",
        traffic: StoreTraffic = StoreTraffic()
    ) throws -> any Store {
        try StoreURL.parse(server.url(bucket: bucket, prefix: prefix, extra: extra))
            .open(create: true, credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: server.secretKey), traffic: traffic)
    }

    func raw(_ server: SeaweedServer, bucket: String, prefix: String = "", extra: String = "") throws -> S3Store {
        guard case .s3(let loc) = try StoreURL.parse(server.url(bucket: bucket, prefix: prefix, extra: extra)) else {
            throw StoreError(.badURL, "not s3")
        }
        return try S3Store(loc, credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: server.secretKey))
    }

    @Test func passesTheStoreConformanceSuite() throws {
        let server = try SeaweedServer.shared()
        let store = try open(server)
        let failures = StoreConformance.run(store)
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func passesTheConformanceSuiteUnderAPrefix() throws {
        let server = try SeaweedServer.shared()
        let b = Self.bucket()
        let store = try open(server, bucket: b, prefix: "site/one")
        #expect(store.location == "s3://\(b)/site/one")
        let failures = StoreConformance.run(store)
        #expect(failures.isEmpty, "\(failures)")
        // Keys really live under the prefix in the bucket.
        try store.put("k/x", [1, 2])
        let whole = try raw(server, bucket: b)
        #expect(try whole.list(prefix: "").map(\.key) == ["site/one/k/x"])
    }

    @Test func largeObjectsGoUpInPartsAndLeaveNoUploadsBehind() throws {
        let server = try SeaweedServer.shared()
        let b = Self.bucket()
        let extra = "&part_size=\(5 << 20)&multipart_threshold=\(6 << 20)"
        let traffic = StoreTraffic()
        let store = try open(server, bucket: b, extra: extra, traffic: traffic)
        var rng = SeededRandom(seed: 7)
        let big = rng.bytes(13 << 20)
        let before = traffic.current.byMethod["POST"] ?? 0
        #expect(try store.put("big/object", big) == true)
        #expect((traffic.current.byMethod["POST"] ?? 0) - before >= 2, "create and complete are POSTs")
        #expect(try store.head("big/object")?.size == big.count)
        #expect(try store.get("big/object") == big)
        #expect(try store.get("big/object", range: (6 << 20)..<(6 << 20) + 100) == Array(big[(6 << 20)..<(6 << 20) + 100]))
        #expect(try store.put("big/object", big, ifAbsent: true) == false)
        #expect(try raw(server, bucket: b, extra: extra).incompleteUploads(prefix: "").isEmpty)
    }

    @Test func abortsStaleMultipartUploads() throws {
        let server = try SeaweedServer.shared()
        let b = Self.bucket()
        let s3 = try raw(server, bucket: b)
        try s3.ensureBucket()
        // Start an upload and walk away from it, as a killed process would.
        let small = s3
        _ = try small.createMultipartUpload("tenants/x/data/aa/orphan")
        #expect(try small.incompleteUploads(prefix: "tenants/x/") == ["tenants/x/data/aa/orphan"])
        #expect(try small.abortIncompleteUploads(prefix: "tenants/y/", olderThan: 0) == 0)
        #expect(try small.abortIncompleteUploads(prefix: "tenants/x/", olderThan: 3600) == 0, "a fresh upload is kept")
        #expect(try small.abortIncompleteUploads(prefix: "tenants/x/", olderThan: 0) == 1)
        #expect(try small.incompleteUploads(prefix: "tenants/x/").isEmpty)
    }

    @Test func theServerRefusesABodyThatDoesNotMatchItsChecksum() throws {
        let server = try SeaweedServer.shared()
        let b = Self.bucket()
        let s3 = try raw(server, bucket: b)
        try s3.ensureBucket()
        let e = #expect(throws: StoreError.self) {
            try [UInt8]([1, 2, 3]).withUnsafeBytes { try s3.put("x/y", bytes: $0, ifAbsent: false, sha256: SHA256.hash([9])) }
        }
        #expect(e?.code == .integrity, "\(String(describing: e))")
        #expect(try s3.head("x/y") == nil)
        try [UInt8]([1, 2, 3]).withUnsafeBytes { _ = try s3.put("x/y", bytes: $0, ifAbsent: false, sha256: SHA256.hash([1, 2, 3])) }
        #expect(try s3.get("x/y") == [1, 2, 3])
    }

    @Test func batchDeleteRemovesEverything() throws {
        let server = try SeaweedServer.shared()
        let store = try open(server)
        let keys = (0..<30).map { "d/\($0)" }
        for k in keys { try store.put(k, [1]) }
        try store.deleteMany(keys + ["d/absent"])
        #expect(try store.list(prefix: "d/").isEmpty)
    }

    @Test func listingFollowsContinuationTokensAndDeletesGoInBatches() throws {
        let server = try SeaweedServer.shared()
        let b = Self.bucket()
        guard case .s3(let loc) = try StoreURL.parse(server.url(bucket: b, prefix: "p")) else { return }
        let s3 = try S3Store(
            loc, credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: server.secretKey),
            listPageSize: 3, deleteBatchSize: 4)
        try s3.ensureBucket()
        let keys = (0..<11).map { "l/k\($0 < 10 ? "0" : "")\($0)" }
        for k in keys { try s3.put(k, [UInt8(k.count)]) }
        try s3.put("m/outside", [1])
        let before = s3.traffic.current.byMethod["GET"] ?? 0
        #expect(try s3.list(prefix: "l/").map(\.key) == keys)
        #expect((s3.traffic.current.byMethod["GET"] ?? 0) - before >= 4, "11 keys in pages of 3")
        let posts = s3.traffic.current.byMethod["POST"] ?? 0
        try s3.deleteMany(keys)
        #expect((s3.traffic.current.byMethod["POST"] ?? 0) - posts >= 3, "11 keys in batches of 4")
        #expect(try s3.list(prefix: "").map(\.key) == ["m/outside"])
    }

    @Test func wrongCredentialsAreAPermissionErrorThatNamesNoSecret() throws {
        let server = try SeaweedServer.shared()
        guard case .s3(let loc) = try StoreURL.parse(server.url(bucket: Self.bucket())) else { return }
        let secret = "wrong-secret-\(UUID().uuidString)"
        let store = try S3Store(loc, credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: secret))
        let e = #expect(throws: StoreError.self) { try store.put("x", [1]) }
        #expect(e?.code == .permission)
        #expect(e.map { !"\($0) \($0.hint ?? "")".contains(secret) } ?? false)
        #expect(!"\(S3Credentials(accessKeyID: "a", secretAccessKey: secret))".contains(secret))
    }

    /// The server is down when a put starts and comes back while the retrying store waits.
    @Test func aPutRetriedAcrossAServerRestartSucceeds() throws {
        let server = try SeaweedServer()
        defer { server.stop() }
        let b = Self.bucket()
        let s3 = try raw(server, bucket: b)
        try s3.ensureBucket()
        server.stop()
        // Generous attempts: the test must not depend on how fast the server restarts.
        let retrying = RetryingStore(s3, policy: .init(attempts: 40, baseDelay: 0.1, maxDelay: 1))
        let outcome = Locked<Result<Bool, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            outcome.withLock { $0 = Result { try retrying.put("r/x", [1, 2, 3]) } }
            done.signal()
        }.start()
        try server.start()
        done.wait()
        #expect(try outcome.current?.get() == true)
        #expect(retrying.retries >= 1)
        #expect(try s3.get("r/x") == [1, 2, 3])
    }

    @Test func aDeadEndpointIsTransient() throws {
        let loc = S3Location(bucket: "nobucket", prefix: "", endpoint: "http://127.0.0.1:1", region: "x")
        let store = try S3Store(loc, credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"), connectTimeout: 2)
        let e = #expect(throws: StoreError.self) { try store.head("x") }
        #expect(e?.code == .transient)
    }

    @Test func s3URLs() throws {
        let u = try StoreURL.parse("s3://my-bucket/a/b?endpoint=http://127.0.0.1:8333&region=eu-central-1")
        #expect(u == .s3(S3Location(bucket: "my-bucket", prefix: "a/b", endpoint: "http://127.0.0.1:8333", region: "eu-central-1")))
        for bad in [
            "s3://AB/x", "s3://user:pw@bucket/x", "s3://bucket/x?secret_key=abc", "s3://bucket/x?endpoint=ftp://h",
            "s3://bucket/x y?endpoint=http://h",
        ] {
            let e = #expect(throws: StoreError.self) { try StoreURL.parse(bad) }
            #expect(e?.kind == .usage, "\(bad)")
            #expect(e.map { !$0.message.contains("abc") && !$0.message.contains("pw") } ?? true)
        }
        #expect(throws: StoreError.self) { try StoreURL.parse("s3://bucket/x").open(create: false, credentials: nil) }
    }
}
