import Foundation
import TresorCore
import TresorCrypto

/// A read-through local cache for immutable objects (index objects, snapshot manifests), so a
/// run against remote storage does not fetch every one of them again.
///
/// Only whole-object reads of keys under `prefixes` are cached; objects there are named by
/// their content and never change, so a cached copy is never stale. Everything else, and every
/// write, list and delete, goes to the underlying store; a delete also drops the cached copy.
/// Cache files are written atomically through a local store.
///
/// A cache file is never trusted as it is: each holds the object followed by the SHA-256 of the
/// object, and a hit is returned only when that hash matches. A damaged, truncated or
/// old-format cache file is dropped and the object fetched from the store again, so a bad cache
/// costs a fetch, never a wrong answer or a failed run.
public final class CachedStore: Store {
    private let base: any Store
    private let cache: LocalStore
    private let prefixes: [String]

    public var location: String { base.location }
    public var capabilities: StoreCapabilities { base.capabilities }

    /// `prefixes` are key prefixes whose objects are immutable, e.g. `tenants/acme/index/`.
    public init(base: any Store, directory: URL, prefixes: [String]) throws {
        self.base = base
        self.cache = try LocalStore(root: directory)
        self.prefixes = prefixes
    }

    private func cacheable(_ key: String) -> Bool { prefixes.contains { key.hasPrefix($0) } }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool) throws -> Bool {
        try base.put(key, bytes: bytes, ifAbsent: ifAbsent)
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool, sha256: ObjectID) throws -> Bool {
        try base.put(key, bytes: bytes, ifAbsent: ifAbsent, sha256: sha256)
    }

    public func deleteMany(_ keys: [String]) throws {
        try base.deleteMany(keys)
        for k in keys where cacheable(k) { try? cache.delete(k) }
    }

    public var versions: (any ObjectVersions)? { base.versions }

    public func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int {
        try base.abortIncompleteUploads(prefix: prefix, olderThan: age)
    }

    public func get(_ key: String, range: Range<Int>?) throws -> [UInt8] {
        guard range == nil, cacheable(key) else { return try base.get(key, range: range) }
        // A cache file that cannot be read is a miss: the store has the object.
        if let entry = try? cache.get(key, range: nil) {
            if let payload = Self.verified(entry) { return payload }
            // Damaged: fetched again below and rewritten. A failed delete is harmless, the put
            // below replaces the file.
            try? cache.delete(key)
        }
        let bytes = try base.get(key, range: nil)
        // A cache that cannot be written only costs speed.
        _ = try? cache.put(key, bytes + SHA256.hash(bytes).bytes)
        return bytes
    }

    /// The object in a cache entry (object ‖ SHA-256 of the object), or nil when the hash does not match.
    static func verified(_ entry: [UInt8]) -> [UInt8]? {
        guard entry.count >= 32 else { return nil }
        let payload = Array(entry[..<(entry.count - 32)])
        return SHA256.hash(payload).bytes == Array(entry[(entry.count - 32)...]) ? payload : nil
    }

    public func head(_ key: String) throws -> ObjectInfo? { try base.head(key) }

    public func list(prefix: String) throws -> [ObjectInfo] { try base.list(prefix: prefix) }

    public func delete(_ key: String) throws {
        try base.delete(key)
        if cacheable(key) { try? cache.delete(key) }
    }
}
