import Foundation
import TresorCore

/// Remembers the first ``StoreError/Code/permission`` failure that passed through it, so a job
/// whose inner code turns every read error into a finding (check names a pack it cannot read as
/// damaged) can still tell an access failure (wrong key, bucket policy, an object ACL the
/// operator lacks) from damage: the caller asks ``denied`` when the job is done and fails with it
/// (exit 1 and the store's hint) instead of reporting damage (exit 3).
///
/// Every operation is forwarded unchanged; errors are rethrown as they are.
public final class AccessWatchingStore: Store {
    public let base: any Store
    private let first = Locked<StoreError?>(nil)

    public init(_ base: any Store) { self.base = base }

    public var location: String { base.location }
    public var capabilities: StoreCapabilities { base.capabilities }

    /// The first permission failure seen, if any.
    public var denied: StoreError? { first.current }

    private func watched<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as StoreError where e.code == .permission {
            first.withLock { if $0 == nil { $0 = e } }
            throw e
        }
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool) throws -> Bool {
        try watched { try base.put(key, bytes: bytes, ifAbsent: ifAbsent) }
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool, sha256: ObjectID) throws -> Bool {
        try watched { try base.put(key, bytes: bytes, ifAbsent: ifAbsent, sha256: sha256) }
    }

    public func get(_ key: String, range: Range<Int>?) throws -> [UInt8] { try watched { try base.get(key, range: range) } }
    public func head(_ key: String) throws -> ObjectInfo? { try watched { try base.head(key) } }
    public func list(prefix: String) throws -> [ObjectInfo] { try watched { try base.list(prefix: prefix) } }
    public func delete(_ key: String) throws { try watched { try base.delete(key) } }
    public func deleteMany(_ keys: [String]) throws { try watched { try base.deleteMany(keys) } }

    public var versions: (any ObjectVersions)? { base.versions }

    public func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int {
        try watched { try base.abortIncompleteUploads(prefix: prefix, olderThan: age) }
    }
}
