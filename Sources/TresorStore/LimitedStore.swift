import Foundation
import TresorCore

/// Bounds how many operations run against a store at once, as restic's `backend/sema` does:
/// callers beyond the limit block until one finishes. Keeps many pipeline threads (restore,
/// check, index loading) from opening more connections than a server should get from one client.
public final class LimitedStore: Store {
    public let base: any Store
    public let limit: Int
    private let slots: DispatchSemaphore

    public init(_ base: any Store, limit: Int) {
        self.base = base
        self.limit = max(1, limit)
        self.slots = DispatchSemaphore(value: max(1, limit))
    }

    public var location: String { base.location }
    public var capabilities: StoreCapabilities {
        var c = base.capabilities
        c.writeConcurrency = min(c.writeConcurrency, limit)
        return c
    }

    private func limited<T>(_ body: () throws -> T) rethrows -> T {
        slots.wait()
        defer { slots.signal() }
        return try body()
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool) throws -> Bool {
        try limited { try base.put(key, bytes: bytes, ifAbsent: ifAbsent) }
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool, sha256: ObjectID) throws -> Bool {
        try limited { try base.put(key, bytes: bytes, ifAbsent: ifAbsent, sha256: sha256) }
    }

    public func get(_ key: String, range: Range<Int>?) throws -> [UInt8] { try limited { try base.get(key, range: range) } }
    public func head(_ key: String) throws -> ObjectInfo? { try limited { try base.head(key) } }
    public func list(prefix: String) throws -> [ObjectInfo] { try limited { try base.list(prefix: prefix) } }
    public func delete(_ key: String) throws { try limited { try base.delete(key) } }
    public func deleteMany(_ keys: [String]) throws { try limited { try base.deleteMany(keys) } }

    public var versions: (any ObjectVersions)? { base.versions }

    public func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int {
        try limited { try base.abortIncompleteUploads(prefix: prefix, olderThan: age) }
    }
}
