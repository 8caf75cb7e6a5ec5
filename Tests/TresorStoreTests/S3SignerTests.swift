import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorTestSupport

@testable import TresorStore

/// Signature V4 against the worked example in AWS's S3 documentation ("Signature Calculations
/// for the Authorization Header", GET Object with a Range header).
@Suite struct S3SignerTests {
    @Test func matchesAWSsDocumentedGetObjectExample() throws {
        let signer = S3Signer(
            credentials: S3Credentials(
                accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            region: "us-east-1")
        let date = try #require(TimeFormat.parse("2013-05-24T00:00:00Z"))
        let headers = signer.sign(
            method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [],
            headers: [("Range", "bytes=0-9")], payloadHash: S3Signer.emptyPayloadHash, date: date)
        let auth = try #require(headers.first { $0.0 == "authorization" }?.1)
        #expect(
            auth
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
        #expect(headers.contains { $0 == ("x-amz-date", "20130524T000000Z") })
        #expect(!headers.contains { $0.0 == "host" }, "curl sends Host itself")
    }

    @Test func encodesQueriesAndPathsTheWaySigV4Wants() {
        #expect(S3Signer.uriEncode("a b/c~d*e", keepSlash: true) == "a%20b/c~d%2Ae")
        #expect(S3Signer.uriEncode("a/b") == "a%2Fb")
        #expect(S3Signer.canonicalQuery([("prefix", "t/x"), ("list-type", "2"), ("uploads", "")]) == "list-type=2&prefix=t%2Fx&uploads=")
    }

    @Test func parsesS3sXML() {
        let text =
            "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key><Size>3</Size></Contents><Contents><Key>c</Key><Size>0</Size></Contents><NextContinuationToken>t&#43;1</NextContinuationToken></ListBucketResult>"
        let items = S3XML.blocks("Contents", in: text[...])
        #expect(items.compactMap { S3XML.value("Key", in: $0) } == ["a&b", "c"])
        #expect(S3XML.value("NextContinuationToken", in: text) == "t+1")
        #expect(S3XML.value("Missing", in: text) == nil)
    }

    @Test func credentialsFilesAreReadAndNeverShown() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("creds-\(UUID().uuidString)")
        try "# comment\n[other]\naws_access_key_id = nope\n[default]\naws_access_key_id = AK1\naws_secret_access_key = \"s3cr3t\"\n"
            .write(to: dir, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try S3Credentials.load(file: dir.path)
        #expect(c == S3Credentials(accessKeyID: "AK1", secretAccessKey: "s3cr3t"))
        #expect(!"\(c)".contains("s3cr3t") && !String(reflecting: c).contains("s3cr3t"))
        let e = #expect(throws: StoreError.self) { try S3Credentials.load(file: dir.path + ".absent") }
        #expect(e?.kind == .usage)
    }

    /// An object whose bytes no longer match the SHA-256 recorded at upload (damage at rest,
    /// simulated by storing a wrong digest) fails a full read as an integrity error.
    @Test func aFullReadOfADamagedObjectIsAnIntegrityError() throws {
        let server = try SeaweedServer.shared()
        guard case .s3(let loc) = try StoreURL.parse(server.url(bucket: "damage-" + UUID().uuidString.prefix(8).lowercased())) else { return }
        let s3 = try S3Store(loc, credentials: S3Credentials(accessKeyID: server.accessKey, secretAccessKey: server.secretKey))
        try s3.ensureBucket()
        let r = try [UInt8]([1, 2, 3]).withUnsafeBytes { try s3.send("PUT", key: "d/x", headers: [("x-amz-meta-sha256", SHA256.hash([9]).hex)], body: $0) }
        #expect(r.status == 200)
        let e = #expect(throws: StoreError.self) { try s3.get("d/x") }
        #expect(e?.code == .integrity)
        #expect(try s3.get("d/x", range: 0..<2) == [1, 2], "ranged reads are checked by the repository, not here")
        let retrying = RetryingStore(s3, policy: .init(attempts: 3), sleep: { _ in })
        let exhausted = #expect(throws: StoreError.self) { try retrying.get("d/x") }
        #expect(exhausted?.message.contains("gave up after 3 attempts") == true)
    }
}
