import Foundation
import TresorCore

/// A parsed store URL: `file:///path` now; `s3://bucket/prefix?endpoint=…&region=…` for object
/// storage. Never carries credentials.
public enum StoreURL: Sendable, Equatable {
    case file(path: String)

    public static func parse(_ text: String) throws -> StoreURL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased() else {
            throw StoreError(.badURL, "cannot read store URL '\(text)'",
                             hint: "use file:///absolute/path or s3://bucket/prefix?endpoint=URL&region=NAME")
        }
        switch scheme {
        case "file":
            let path = url.path
            guard path.hasPrefix("/"), url.host == nil || url.host == "" || url.host == "localhost" else {
                throw StoreError(.badURL, "store URL '\(text)' needs an absolute path", hint: "file:///srv/tresor/store")
            }
            if url.user != nil || url.password != nil {
                throw StoreError(.badURL, "store URLs never carry credentials")
            }
            return .file(path: path)
        default:
            throw StoreError(.badURL, "store URL scheme '\(scheme)' is not supported",
                             hint: "use file:///absolute/path")
        }
    }

    /// Opens the store the URL names.
    public func open(create: Bool) throws -> any Store {
        switch self {
        case .file(let path): return try LocalStore(root: URL(fileURLWithPath: path), create: create)
        }
    }
}
