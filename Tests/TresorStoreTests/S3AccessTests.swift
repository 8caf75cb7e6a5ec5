import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorTestSupport

@testable import TresorStore

/// How S3Store behaves with keys that may not do everything, against a real SeaweedFS whose
/// scoped identities answer a HEAD or GET of a missing key with 403, as AWS and Ceph RGW do
/// without an unconditional `s3:ListBucket`.
@Suite struct S3AccessTests {
    func store(_ server: SeaweedServer, key: String, secret: String) throws -> S3Store {
        guard case .s3(let loc) = try StoreURL.parse(server.url(bucket: SeaweedServer.walBucket)) else { throw StoreError(.badURL, "not s3") }
        return try S3Store(loc, credentials: S3Credentials(accessKeyID: key, secretAccessKey: secret))
    }

    func operatorStore(_ server: SeaweedServer) throws -> S3Store {
        let s = try store(server, key: server.accessKey, secret: server.secretKey)
        try s.ensureBucket()
        return s
    }

    @Test func aMissingKeyAnswering403IsAbsentWhenAPrefixListingProvesIt() throws {
        let server = try SeaweedServer.shared()
        _ = try operatorStore(server)
        let key = "tenants/wlist/wal/00000001/missing-\(UUID().uuidString.prefix(8))"
        let listing = try store(server, key: server.walListAccessKey, secret: server.walListSecretKey)
        #expect(try listing.head(key) == nil)
        #expect { try listing.get(key) } throws: { ($0 as? StoreError)?.code == .notFound }
        // A present key it may not read (written by the operator: on RGW a writer may read its
        // own objects) stays a permission failure, never "absent".
        try operatorStore(server).put(key, [1, 2, 3])
        #expect { try listing.head(key) } throws: { ($0 as? StoreError)?.code == .permission }
        #expect { try listing.get(key) } throws: { ($0 as? StoreError)?.code == .permission }
    }

    @Test func a403ThatNothingExplainsStaysAPermissionFailure() throws {
        let server = try SeaweedServer.shared()
        _ = try operatorStore(server)
        let writeOnly = try store(server, key: server.walWriteOnlyAccessKey, secret: server.walWriteOnlySecretKey)
        let key = "tenants/wpush/wal/00000001/missing-\(UUID().uuidString.prefix(8))"
        #expect { try writeOnly.head(key) } throws: { e in
            guard let e = e as? StoreError else { return false }
            return e.code == .permission && e.hint != nil && !e.message.hasSuffix(": ")
        }
        // The conditional put needs no read: created once, refused (false) the second time.
        #expect(try writeOnly.put(key, [1, 2, 3], ifAbsent: true))
        #expect(try !writeOnly.put(key, [1, 2, 3], ifAbsent: true))
        #expect(try operatorStore(server).get(key) == [1, 2, 3])
    }

    @Test func everySingleRequestPutGivesTheBucketOwnerFullControl() {
        let headers = S3Store.putHeaders(sha256: SHA256.hash([1, 2, 3]), ifAbsent: true)
        #expect(headers.contains { $0.0 == "x-amz-acl" && $0.1 == "bucket-owner-full-control" })
        #expect(headers.contains { $0.0 == "if-none-match" && $0.1 == "*" })
    }

    /// Ceph RGW's answers, byte for byte as RGW 16.2 sends them (see ../shared/S3.md).
    @Test func anRGWErrorWithAnEmptyMessageLeavesNoDanglingColon() throws {
        let s = try S3Store(
            S3Location(bucket: "b", prefix: "", endpoint: "http://127.0.0.1:1", region: "eu-central-1"),
            credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "s"))
        let denied = HTTPResponse(
            status: 403, headers: [:],
            body: Array(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message></Message><BucketName>b</BucketName><RequestId>tx1</RequestId><HostId>h</HostId></Error>"
                    .utf8))
        let e = s.failure(denied, "get k")
        #expect(e.message == "get k in s3://b: http 403 AccessDenied")
        let noBody = s.failure(HTTPResponse(status: 403, headers: [:], body: []), "head k")
        #expect(noBody.message == "head k in s3://b: http 403")
    }

    @Test func aRegionTheServerDoesNotKnowFailsBucketCreationWithAHint() throws {
        let s = try S3Store(
            S3Location(bucket: "b", prefix: "", endpoint: "http://127.0.0.1:1", region: "eu-central-1"),
            credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "s"))
        let rgw = HTTPResponse(
            status: 400, headers: [:],
            body: Array(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidLocationConstraint</Code><Message></Message><BucketName>b</BucketName><RequestId>tx1</RequestId><HostId>h</HostId></Error>"
                    .utf8))
        let e = s.bucketCreationFailure(rgw)
        #expect(e.kind == .usage)
        #expect(e.message.contains("InvalidLocationConstraint") && e.message.contains("eu-central-1") && !e.message.hasSuffix(": "))
        #expect(e.hint?.contains("region=") == true && e.hint?.contains("default") == true)
    }
}
