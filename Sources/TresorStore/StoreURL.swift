import Foundation
import TresorCore

/// A parsed store URL: `file:///path`, or `s3://bucket/prefix?endpoint=URL&region=NAME` for
/// object storage (optional `part_size` and `multipart_threshold` in bytes). Never carries
/// credentials: a URL with a user, a password or an unknown parameter is refused.
public enum StoreURL: Sendable, Equatable {
    case file(path: String)
    case s3(S3Location)

    static let s3Parameters: Set<String> = ["endpoint", "region", "part_size", "multipart_threshold"]

    public static func parse(_ text: String) throws -> StoreURL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased() else {
            throw StoreError(
                .badURL, "cannot read store URL",
                hint: "use file:///absolute/path or s3://bucket/prefix?endpoint=URL&region=NAME")
        }
        if url.user != nil || url.password != nil {
            throw StoreError(
                .badURL, "store URLs never carry credentials",
                hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or s3.credentials_file in tresor.toml")
        }
        switch scheme {
        case "file":
            let path = url.path
            guard path.hasPrefix("/"), url.host == nil || url.host == "" || url.host == "localhost" else {
                throw StoreError(.badURL, "store URL '\(text)' needs an absolute path", hint: "file:///srv/tresor/store")
            }
            return .file(path: path)
        case "s3":
            return .s3(try parseS3(url))
        default:
            throw StoreError(
                .badURL, "store URL scheme '\(scheme)' is not supported",
                hint: "use file:///absolute/path or s3://bucket/prefix?endpoint=URL&region=NAME")
        }
    }

    private static func parseS3(_ url: URL) throws -> S3Location {
        let hint = "s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=eu-central-1"
        guard let bucket = url.host, bucket.count >= 3, bucket.count <= 63,
            bucket.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 })
        else {
            throw StoreError(.badURL, "s3 store URL needs a bucket name of 3-63 lowercase letters, digits, '.' or '-'", hint: hint)
        }
        let prefix = url.path.split(separator: "/").joined(separator: "/")
        if !prefix.isEmpty {
            do { try validateStoreKey(prefix) } catch {
                throw StoreError(.badURL, "s3 store prefix may only hold letters, digits, '.', '_', '-' and '/'", hint: hint)
            }
        }
        var params: [String: String] = [:]
        for item in URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems ?? [] {
            // Name only: an unknown parameter might be a secret someone tried to pass.
            guard s3Parameters.contains(item.name) else {
                throw StoreError(
                    .badURL, "s3 store URL parameter '\(item.name)' is not supported",
                    hint: "use endpoint=, region=, part_size=, multipart_threshold=; credentials come from the environment or s3.credentials_file")
            }
            params[item.name] = item.value ?? ""
        }
        let region = params["region"] ?? "us-east-1"
        let endpoint = (params["endpoint"] ?? "https://s3.\(region).amazonaws.com").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard let e = URL(string: endpoint), e.scheme == "http" || e.scheme == "https", e.host != nil,
            e.path.isEmpty || e.path == "/", e.user == nil, e.password == nil
        else {
            throw StoreError(.badURL, "s3 endpoint must be http(s)://host[:port] without a path or credentials", hint: hint)
        }
        func size(_ name: String, _ fallback: Int, min: Int) throws -> Int {
            guard let v = params[name] else { return fallback }
            guard let n = Int(v), n >= min else { throw StoreError(.badURL, "s3 store URL parameter \(name) must be a number of bytes >= \(min)") }
            return n
        }
        return S3Location(
            bucket: bucket, prefix: prefix, endpoint: endpoint, region: region,
            partSize: try size("part_size", S3Location.defaultPartSize, min: 5 << 20),
            multipartThreshold: try size("multipart_threshold", S3Location.defaultMultipartThreshold, min: 5 << 20))
    }

    /// Whether opening this store needs S3 credentials.
    public var needsCredentials: Bool {
        if case .s3 = self { return true }
        return false
    }

    /// Opens the store the URL names, as ``StoreFactory`` composes it (S3: retries with backoff
    /// around a bound of ``s3ConnectionLimit`` operations in flight). `create` makes a missing
    /// directory or bucket.
    public func open(create: Bool, credentials: S3Credentials? = nil, traffic: StoreTraffic = StoreTraffic()) throws -> any Store {
        let bucket = if case .s3(let location) = self { location.bucket } else { "" }
        let factory = StoreFactory(
            credentials: {
                guard let credentials else {
                    throw StoreError(
                        .badURL, "no s3 credentials for s3://\(bucket)",
                        hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or s3.credentials_file in tresor.toml")
                }
                return credentials
            }, traffic: traffic)
        return try factory.base(self, create: create)
    }

    /// Connections one process opens to one S3 store at most.
    public static let s3ConnectionLimit = 16
}
