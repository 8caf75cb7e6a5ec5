import Foundation
import TresorCore
import TresorCrypto

/// Where an S3 store lives: `s3://BUCKET/PREFIX?endpoint=URL&region=NAME`, plus optional
/// `part_size` and `multipart_threshold` (bytes). Never carries credentials.
public struct S3Location: Sendable, Equatable {
    /// The bucket; created by `store add` when missing.
    public var bucket: String
    /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
    public var prefix: String
    /// `http(s)://host[:port]`, no path. Requests use path-style addressing (`/bucket/key`).
    public var endpoint: String
    /// The signing region (SigV4 scope), `us-east-1` when the URL names none.
    public var region: String
    /// Bytes per part of a multipart upload (S3's minimum is 5 MiB).
    public var partSize: Int
    /// Objects larger than this go up as multipart uploads.
    public var multipartThreshold: Int

    /// 8 MiB parts.
    public static let defaultPartSize = 8 << 20
    /// Packs (16 MiB target, up to 20 MiB) go up in one PUT: fewer requests than parts would
    /// need. Larger objects use multipart uploads.
    public static let defaultMultipartThreshold = 32 << 20

    public init(
        bucket: String, prefix: String, endpoint: String, region: String,
        partSize: Int = defaultPartSize, multipartThreshold: Int = defaultMultipartThreshold
    ) {
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.region = region
        self.partSize = partSize
        self.multipartThreshold = multipartThreshold
    }
}

/// Requests sent by the S3 stores of one command, for reports and benchmarks.
public struct S3Traffic: Sendable, Codable, Equatable {
    /// HTTP requests sent, retries included.
    public var requests = 0
    /// Request body bytes (object data, XML).
    public var bytesSent: UInt64 = 0
    /// Response body bytes.
    public var bytesReceived: UInt64 = 0
    /// Requests per HTTP method (`PUT`, `GET`, `HEAD`, `POST`, `DELETE`).
    public var byMethod: [String: Int] = [:]
}

/// A store in an S3-compatible bucket (AWS S3, SeaweedFS, Ceph RGW, MinIO), spoken to over
/// HTTP with AWS Signature V4 and path-style addressing.
///
/// - put: one `PUT` up to ``S3Location/multipartThreshold``, a multipart upload above it (parts
///   of ``S3Location/partSize``, aborted on failure). `ifAbsent` is `If-None-Match: *`, decided
///   atomically by the server (412 means the key exists). The body's SHA-256 goes with it as
///   `x-amz-checksum-sha256` (the server refuses a body that does not match it: BadDigest), is
///   signed as `x-amz-content-sha256`, and is kept as metadata `x-amz-meta-sha256`. Parts of a
///   multipart upload carry only the signed payload hash (AWS checks it; SeaweedFS 4.48 does not),
///   so for those the whole-object check on read is what catches damage.
/// - get: full reads are checked against that stored SHA-256; ranged reads are checked for
///   length (the repository authenticates every blob inside them with AES-GCM).
/// - list: ListObjectsV2 with continuation; delete: DeleteObject, idempotent; ``deleteMany(_:)``
///   batches up to 1000 keys per DeleteObjects request.
///
/// Errors are ``StoreError``s: `.transient` for what may succeed when retried (5xx, 429,
/// dropped connections, timeouts), other codes for what will not. Wrap the store in a
/// ``RetryingStore``. Credentials appear in no message, location or description.
public final class S3Store: Store {
    public let config: S3Location
    public let location: String
    /// Uploads of 16 MiB packs are latency-bound per connection; six in flight keep a local or
    /// nearby server busy without holding many packs in memory.
    public let capabilities = StoreCapabilities(atomicCreate: true, cheapRangedReads: false, writeConcurrency: 6)

    let http: HTTPClient
    let signer: S3Signer
    let host: String
    /// Signing needs the real time (servers refuse skewed requests), never an injected clock.
    private let wallClock: any Clock = SystemClock()

    /// Where this store counts the requests it sends (one counter per command, shared by its
    /// stores: ``StoreFactory/traffic``).
    public let traffic: StoreTraffic

    /// Keys per ListObjectsV2 page and per DeleteObjects request (S3 allows at most 1000 each;
    /// tests lower them to exercise continuation and batching).
    let listPageSize: Int
    let deleteBatchSize: Int

    public init(
        _ config: S3Location, credentials: S3Credentials, connectTimeout: Int = 10, stallTimeout: Int = 60,
        listPageSize: Int = 1000, deleteBatchSize: Int = 1000, traffic: StoreTraffic = StoreTraffic()
    ) throws {
        self.config = config
        self.traffic = traffic
        self.listPageSize = min(1000, max(1, listPageSize))
        self.deleteBatchSize = min(1000, max(1, deleteBatchSize))
        self.location = "s3://\(config.bucket)" + (config.prefix.isEmpty ? "" : "/\(config.prefix)")
        guard let url = URL(string: config.endpoint), let h = url.host, let scheme = url.scheme,
            scheme == "http" || scheme == "https"
        else {
            throw StoreError(.badURL, "s3 endpoint '\(config.endpoint)' is not an http(s) URL", hint: "endpoint=http://127.0.0.1:8333")
        }
        host = url.port.map { "\(h):\($0)" } ?? h
        http = HTTPClient(connectTimeout: connectTimeout, stallTimeout: stallTimeout)
        signer = S3Signer(credentials: credentials, region: config.region)
    }

    /// Sent with every object written: on stores with object ACLs (Ceph RGW, AWS buckets without
    /// "bucket owner enforced"), an object written with another user's key (the PostgreSQL user's
    /// WAL key) is otherwise unreadable to the bucket owner, so `pg window` and `pg restore` fail.
    static let ownerACL = ("x-amz-acl", "bucket-owner-full-control")

    // MARK: requests

    func objectKey(_ key: String) -> String { config.prefix.isEmpty ? key : config.prefix + "/" + key }

    /// Signs and sends one request. `key` nil addresses the bucket.
    func send(
        _ method: String, key: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
        body: UnsafeRawBufferPointer? = nil, payloadHash: String? = nil, expectedBodySize: Int = 0
    ) throws -> HTTPResponse {
        var path = "/" + S3Signer.uriEncode(config.bucket)
        if let key { path += "/" + S3Signer.uriEncode(objectKey(key), keepSlash: true) }
        let hash = payloadHash ?? (body.map { SHA256.hash($0).hex } ?? S3Signer.emptyPayloadHash)
        let signed = signer.sign(
            method: method, host: host, path: path, query: query, headers: headers,
            payloadHash: hash, date: wallClock.now())
        let qs = query.isEmpty ? "" : "?" + S3Signer.canonicalQuery(query)
        traffic.sent(method: method, bytes: body?.count ?? 0)
        let response: HTTPResponse
        do {
            response = try http.perform(
                method: method, url: config.endpoint + path + qs, headers: signed, body: body,
                expectedBodySize: expectedBodySize)
        } catch let e as HTTPTransportError {
            throw StoreError(.transient, "s3 \(method.lowercased()) \(key ?? config.bucket) in \(location) failed: \(e.message.lowercased())")
        }
        traffic.received(bytes: response.body.count)
        return response
    }

    /// The store error for an unexpected HTTP answer: S3's error code and message, never the
    /// request (whose headers hold the signature).
    func failure(_ r: HTTPResponse, _ what: String) -> StoreError {
        let text = String(decoding: r.body.prefix(4096), as: UTF8.self)
        let code = S3XML.value("Code", in: text).flatMap { $0.isEmpty ? nil : $0 }
        // RGW sends an empty <Message/>: no dangling ": " then.
        let message =
            S3XML.value("Message", in: text)
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .flatMap { $0.isEmpty ? nil : ": " + $0.lowercased() } ?? ""
        let detail = "\(what) in \(location): http \(r.status)" + (code.map { " \($0)" } ?? "") + message
        switch r.status {
        case 500...599, 429, 408:
            return StoreError(.transient, detail)
        case 400 where code == "XAmzContentSHA256Mismatch" || code == "BadDigest":
            // The body the server received is not the one that was hashed: damaged on the way.
            return StoreError(.integrity, detail)
        case 409 where code == "OperationAborted" || code == "ConditionalRequestConflict":
            return StoreError(.transient, detail)
        case 401, 403:
            return StoreError(
                .permission, detail,
                hint: "check the s3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or s3.credentials_file), the bucket policy and object ACLs")
        default:
            return StoreError(.io, detail)
        }
    }

    // MARK: bucket

    /// Creates the bucket when it does not exist yet.
    public func ensureBucket() throws {
        let h = try send("HEAD", key: nil)
        if h.status == 200 { return }
        guard h.status == 404 else { throw failure(h, "head bucket \(config.bucket)") }
        var body: [UInt8] = []
        if config.region != "us-east-1" {
            body = Array(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>\(S3XML.escape(config.region))</LocationConstraint></CreateBucketConfiguration>"
                    .utf8)
        }
        let r = try body.withUnsafeBytes { try send("PUT", key: nil, body: $0) }
        if r.status == 200 { return }
        let code = S3XML.value("Code", in: String(decoding: r.body, as: UTF8.self))
        if r.status == 409, code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" { return }
        throw bucketCreationFailure(r)
    }

    /// Why creating the bucket failed. A region the server does not know (Ceph RGW names regions
    /// after its zonegroups, often `default`) is a configuration error with a way out.
    func bucketCreationFailure(_ r: HTTPResponse) -> StoreError {
        let code = S3XML.value("Code", in: String(decoding: r.body.prefix(4096), as: UTF8.self))
        guard code == "InvalidLocationConstraint" else { return failure(r, "create bucket \(config.bucket)") }
        let e = failure(r, "create bucket \(config.bucket) with location constraint '\(config.region)'")
        return StoreError(
            .badURL, e.message,
            hint:
                "the server does not know region '\(config.region)': put its own region name in the url (&region=NAME; Ceph RGW: its zonegroup, often 'default'), or &region=us-east-1 to send no constraint, or create the bucket yourself"
        )
    }

    // MARK: Store

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, options: PutOptions) throws -> Bool {
        try validateStoreKey(key)
        let ifAbsent = options.ifAbsent
        let sha256 = options.sha256 ?? SHA256.hash(bytes)
        let hash = sha256.hex
        if bytes.count > config.multipartThreshold {
            return try putMultipart(key, bytes: bytes, sha256: hash, ifAbsent: ifAbsent)
        }
        // x-amz-checksum-sha256 is what servers check against the body they received (AWS, and
        // SeaweedFS, which does not check the signed x-amz-content-sha256): 400 BadDigest otherwise.
        let r = try send("PUT", key: key, headers: Self.putHeaders(sha256: sha256, ifAbsent: ifAbsent), body: bytes, payloadHash: hash)
        switch r.status {
        case 200: return true
        case 412 where ifAbsent: return false
        default: throw failure(r, "put \(key)")
        }
    }

    /// The headers of a single-request put besides the signature's.
    static func putHeaders(sha256: ObjectID, ifAbsent: Bool) -> [(String, String)] {
        var headers = [("x-amz-meta-sha256", sha256.hex), ("x-amz-checksum-sha256", Data(sha256.bytes).base64EncodedString()), ownerACL]
        if ifAbsent { headers.append(("if-none-match", "*")) }
        return headers
    }

    public func get(_ key: String, range: Range<Int>?) throws -> [UInt8] {
        try validateStoreKey(key)
        var headers: [(String, String)] = []
        if let range {
            if range.isEmpty {
                guard try head(key) != nil else { throw StoreError.notFound(key, in: location) }
                return []
            }
            headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let r = try send("GET", key: key, headers: headers, expectedBodySize: range?.count ?? 0)
        switch r.status {
        case 200:
            if let range {
                // A server that ignores Range sends the whole object.
                guard r.body.count >= range.upperBound else { throw shortRead(key, range) }
                return Array(r.body[range])
            }
            try verify(r, key: key)
            return r.body
        case 206:
            guard let range, r.body.count == range.count else { throw shortRead(key, range ?? 0..<0) }
            return r.body
        case 404:
            throw StoreError.notFound(key, in: location)
        case 403 where try provedAbsent(key):
            throw StoreError.notFound(key, in: location)
        case 416:
            throw shortRead(key, range ?? 0..<0)
        default:
            throw failure(r, "get \(key)")
        }
    }

    private func shortRead(_ key: String, _ range: Range<Int>) -> StoreError {
        StoreError(.io, "object \(key) is shorter than the requested range \(range.lowerBound)..<\(range.upperBound)")
    }

    /// Checks a full read against the SHA-256 recorded at upload (objects written by other tools
    /// have none and are only length-checked).
    private func verify(_ r: HTTPResponse, key: String) throws {
        if let length = r.headers["content-length"].flatMap(Int.init), length != r.body.count {
            throw StoreError(.integrity, "object \(key) in \(location) arrived with \(r.body.count) of \(length) bytes")
        }
        if let expected = r.headers["x-amz-meta-sha256"], SHA256.hash(r.body).hex != expected.lowercased() {
            throw StoreError(.integrity, "object \(key) in \(location) does not match the sha-256 recorded when it was stored")
        }
    }

    public func head(_ key: String) throws -> ObjectInfo? {
        try validateStoreKey(key)
        let r = try send("HEAD", key: key)
        switch r.status {
        case 200:
            guard let size = r.headers["content-length"].flatMap(Int.init) else {
                throw StoreError(.io, "head \(key) in \(location): no content-length")
            }
            return ObjectInfo(key: key, size: size)
        case 404: return nil
        case 403 where try provedAbsent(key): return nil
        default: throw failure(r, "head \(key)")
        }
    }

    /// Whether a key that answered 403 is in fact absent. Without an unconditional `s3:ListBucket`
    /// (AWS, Ceph RGW), HEAD and GET of a missing key answer 403, not 404; a key allowed to list
    /// its own prefix (`s3:prefix` condition) can still tell: a listing with the key as prefix
    /// that does not contain it proves the key absent. Anything else (listing refused too, or
    /// the key listed) leaves the 403 standing as a permission failure.
    func provedAbsent(_ key: String) throws -> Bool {
        let full = objectKey(key)
        let r = try send("GET", key: nil, query: [("list-type", "2"), ("prefix", full), ("max-keys", "1")])
        guard r.status == 200 else { return false }
        let text = String(decoding: r.body, as: UTF8.self)[...]
        return !S3XML.blocks("Contents", in: text).contains { S3XML.value("Key", in: $0) == full }
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        let full = config.prefix.isEmpty ? prefix : config.prefix + "/" + prefix
        let strip = config.prefix.isEmpty ? 0 : config.prefix.count + 1
        var out: [ObjectInfo] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", full), ("max-keys", "\(listPageSize)")]
            if let token { query.append(("continuation-token", token)) }
            let r = try send("GET", key: nil, query: query)
            guard r.status == 200 else { throw failure(r, "list \(prefix)") }
            let text = String(decoding: r.body, as: UTF8.self)[...]
            for item in S3XML.blocks("Contents", in: text) {
                guard let key = S3XML.value("Key", in: item), key.count >= strip,
                    let size = S3XML.value("Size", in: item).flatMap(Int.init)
                else { continue }
                out.append(ObjectInfo(key: String(key.dropFirst(strip)), size: size))
            }
            let truncated = S3XML.value("IsTruncated", in: text) == "true"
            token = truncated ? S3XML.value("NextContinuationToken", in: text) : nil
            if truncated && token == nil { throw StoreError(.io, "list \(prefix) in \(location): truncated answer without a continuation token") }
        } while token != nil
        out.sort { $0.key < $1.key }
        return out
    }

    /// One key is one DeleteObject; more go up to `deleteBatchSize` (1000) keys per DeleteObjects
    /// request (quiet mode: only failures come back).
    public func delete(keys: [String]) throws {
        for k in keys { try validateStoreKey(k) }
        if keys.count == 1 {
            let r = try send("DELETE", key: keys[0])
            guard r.status == 204 || r.status == 200 || r.status == 404 else { throw failure(r, "delete \(keys[0])") }
            return
        }
        var start = 0
        while start < keys.count {
            let batch = keys[start..<min(keys.count, start + deleteBatchSize)]
            start += batch.count
            let text = try deleteObjects(batch.map { "<Key>\(S3XML.escape(objectKey($0)))</Key>" }, what: "delete \(batch.count) objects")
            let errors = S3XML.blocks("Error", in: text).filter { S3XML.value("Code", in: $0) != "NoSuchKey" }
            if let first = errors.first {
                throw StoreError(.io, "delete \(S3XML.value("Key", in: first) ?? "?") in \(location): \(S3XML.value("Code", in: first) ?? "error")")
            }
        }
    }

    /// One DeleteObjects request (quiet: only failures come back) for `objects`, each the inner
    /// XML of an `<Object>`; returns the answer's text for the caller to judge its errors.
    func deleteObjects(_ objects: [String], what: String) throws -> Substring {
        var xml = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
        for o in objects { xml += "<Object>\(o)</Object>" }
        xml += "</Delete>"
        let body = Array(xml.utf8)
        let md5 = Data(MD5.digest(body)).base64EncodedString()
        let r = try body.withUnsafeBytes {
            try send("POST", key: nil, query: [("delete", "")], headers: [("content-md5", md5), ("content-type", "application/xml")], body: $0)
        }
        guard r.status == 200 else { throw failure(r, what) }
        return String(decoding: r.body, as: UTF8.self)[...]
    }
}
