import Foundation
import TresorCore
import TresorCrypto

/// An access key pair for an S3-compatible service. Its description never shows the secret.
public struct S3Credentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let accessKeyID: String
    let secretAccessKey: String

    public init(accessKeyID: String, secretAccessKey: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
    }

    public var description: String { "S3Credentials(\(accessKeyID), secret redacted)" }
    public var debugDescription: String { description }

    /// Reads an AWS-style credentials file: `aws_access_key_id = …` and `aws_secret_access_key = …`
    /// lines, in the `[default]` section (or outside any section). The error never quotes the file.
    public static func load(file path: String) throws -> S3Credentials {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw StoreError(
                .badURL, "cannot read the s3 credentials file \(path)",
                hint: "check s3.credentials_file in tresor.toml")
        }
        var section = "default"
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                continue
            }
            guard section == "default", let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            values[key] = value
        }
        guard let id = values["aws_access_key_id"], !id.isEmpty,
            let secret = values["aws_secret_access_key"], !secret.isEmpty
        else {
            throw StoreError(
                .badURL, "the s3 credentials file \(path) lacks aws_access_key_id or aws_secret_access_key",
                hint: "write both under [default]")
        }
        return S3Credentials(accessKeyID: id, secretAccessKey: secret)
    }
}

/// AWS Signature Version 4 for S3 (header-based, signed payload hash).
///
/// Every request carries `x-amz-date`, `x-amz-content-sha256` (the SHA-256 of the body; AWS
/// checks it against the body, some compatible servers do not) and an `Authorization` header over
/// the method, path, query and the headers that matter. The signing key is derived once per day.
struct S3Signer: Sendable {
    let credentials: S3Credentials
    let region: String
    private let cachedKey = Locked<(day: String, key: [UInt8])?>(nil)

    init(credentials: S3Credentials, region: String) {
        self.credentials = credentials
        self.region = region
    }

    /// The SHA-256 of an empty body, in hex.
    static let emptyPayloadHash = SHA256.hash([UInt8]()).hex

    /// Returns `headers` plus `x-amz-date`, `x-amz-content-sha256` and `Authorization`.
    /// `path` is already URI-encoded; `query` pairs are raw and encoded here.
    func sign(
        method: String, host: String, path: String, query: [(String, String)], headers: [(String, String)],
        payloadHash: String, date: Date
    ) -> [(String, String)] {
        let (amzDate, day) = Self.timestamps(date)
        var all = headers.map { ($0.0.lowercased(), $0.1.trimmingCharacters(in: .whitespaces)) }
        all.append(("host", host))
        all.append(("x-amz-date", amzDate))
        all.append(("x-amz-content-sha256", payloadHash))
        all.sort { $0.0 < $1.0 }
        let signedHeaders = all.map(\.0).joined(separator: ";")
        let canonicalHeaders = all.map { "\($0.0):\($0.1)\n" }.joined()
        let canonicalRequest = [
            method, path, Self.canonicalQuery(query), canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/s3/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, SHA256.hash(Array(canonicalRequest.utf8)).hex]
            .joined(separator: "\n")
        let signature = HMACSHA256(key: signingKey(day: day)).mac(Array(stringToSign.utf8)).hex
        var out = all.filter { $0.0 != "host" }
        out.append(
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
            ))
        return out
    }

    private func signingKey(day: String) -> [UInt8] {
        if let c = cachedKey.current, c.day == day { return c.key }
        func hmac(_ key: [UInt8], _ text: String) -> [UInt8] { HMACSHA256(key: key).mac(Array(text.utf8)).bytes }
        let key = hmac(hmac(hmac(hmac(Array(("AWS4" + credentials.secretAccessKey).utf8), day), region), "s3"), "aws4_request")
        cachedKey.withLock { $0 = (day, key) }
        return key
    }

    static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(String, String)] = query.map { (uriEncode($0.0), uriEncode($0.1)) }
        let sorted = encoded.sorted { (a: (String, String), b: (String, String)) -> Bool in
            a.0 == b.0 ? a.1 < b.1 : a.0 < b.0
        }
        return sorted.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// RFC 3986 encoding as SigV4 wants it: everything but `A-Za-z0-9-._~` (and `/` when
    /// `keepSlash`) becomes `%XX` with uppercase hex.
    static func uriEncode(_ s: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.utf8 {
            let unreserved =
                (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
                || c == 0x2D || c == 0x2E || c == 0x5F || c == 0x7E
            if unreserved || (keepSlash && c == 0x2F) {
                out.unicodeScalars.append(Unicode.Scalar(c))
            } else {
                out += String(format: "%%%02X", c)
            }
        }
        return out
    }

    /// `20261127T093000Z` and `20261127`, in UTC.
    static func timestamps(_ date: Date) -> (String, String) {
        var t = time_t(date.timeIntervalSince1970)
        var tm = tm()
        gmtime_r(&t, &tm)
        let day = String(format: "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday)
        return (day + String(format: "T%02d%02d%02dZ", tm.tm_hour, tm.tm_min, tm.tm_sec), day)
    }
}
