import TresorCore

/// What a store can do beyond the five operations every store has.
public struct StoreCapabilities: Sendable, Equatable {
    /// A put with `ifAbsent` is decided by the store atomically (a local rename with link, or an
    /// S3 `If-None-Match: *`), not by a head-then-put race.
    public var atomicCreate: Bool
    /// Reads are cheap enough that many small ranged gets beat one large get.
    public var cheapRangedReads: Bool
    /// How many puts in flight keep this store busy without wasting memory on queued packs.
    public var writeConcurrency: Int

    public init(atomicCreate: Bool, cheapRangedReads: Bool, writeConcurrency: Int) {
        self.atomicCreate = atomicCreate
        self.cheapRangedReads = cheapRangedReads
        self.writeConcurrency = writeConcurrency
    }
}

/// What `head` learns about an object.
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: Int

    public init(key: String, size: Int) {
        self.key = key
        self.size = size
    }
}

/// How a put behaves beyond storing the bytes.
public struct PutOptions: Sendable, Equatable {
    /// Leave an existing object alone and return `false` instead of replacing it. Decided
    /// atomically where ``StoreCapabilities/atomicCreate`` says so.
    public var ifAbsent: Bool
    /// The SHA-256 of the bytes when the caller already knows it (packs and index objects are
    /// named by it): a store that needs the digest (S3 signs it, and the server refuses a body
    /// that does not match) skips hashing the bytes again. Others ignore it.
    public var sha256: ObjectID?

    public init(ifAbsent: Bool = false, sha256: ObjectID? = nil) {
        self.ifAbsent = ifAbsent
        self.sha256 = sha256
    }
}

/// The operations of ``Store``, one case per requirement: wrappers route each through
/// ``StoreWrapper/around(_:_:_:)``, fault injection chooses by them, and the wrapper conformance
/// test exercises every case against every wrapper (so an operation a wrapper does not forward
/// fails it). A new requirement of ``Store`` gets a case here.
public enum StoreOperation: String, Sendable, CaseIterable {
    case put, get, head, list, delete
    /// ``Store/abortIncompleteUploads(prefix:olderThan:)``.
    case cleanUploads = "clean_uploads"
}

/// The dumb, tiny storage underneath a repository: keys to immutable byte strings.
///
/// Every store guarantees:
/// - **atomic put**: an object is either absent or complete; a reader never sees half an object,
///   even when the writer is killed mid-way;
/// - **read-after-write**: once `put` returns, `get`, `head` and `list` see the object;
/// - **idempotent delete**: deleting an absent key succeeds.
///
/// Keys are `/`-separated relative paths of `[A-Za-z0-9._-]` segments. Operations block the
/// calling thread (local I/O, HTTP round trips) and are safe to call from many threads at once;
/// call them from pipeline threads, never from Swift's cooperative pool. Everything smart (retry,
/// concurrency limits, region guards, dry runs, fault injection) is a ``StoreWrapper`` around a
/// store, and ``StoreFactory`` composes them. The requirements are the smallest set, one per
/// ``StoreOperation``, with options; the conveniences callers use (`put(_:_:ifAbsent:)`,
/// `get(_:)`, `delete(_:)`, `deleteMany(_:)`) are in an extension and cost nothing to wrap.
public protocol Store: Sendable {
    /// A human-readable location without secrets, e.g. `file:///srv/backup` or `s3://bucket/prefix`.
    var location: String { get }
    var capabilities: StoreCapabilities { get }

    /// Stores `bytes` under `key`, replacing any object there unless `options.ifAbsent` is set,
    /// in which case an existing object is left alone and `false` is returned. The bytes are only
    /// read during the call. Buffers aligned to 4096 bytes let a local store write without
    /// copying through the page cache.
    @discardableResult
    func put(_ key: String, bytes: UnsafeRawBufferPointer, options: PutOptions) throws -> Bool

    /// Reads the whole object, or `range` of it (byte offsets, end exclusive).
    /// Throws `StoreError.notFound` when the key is absent.
    func get(_ key: String, range: Range<Int>?) throws -> [UInt8]

    /// Reads `range` of the object into the first `range.count` bytes of `buffer`, which grows
    /// when it is shorter and never shrinks: a reader that reuses one buffer allocates nothing
    /// per read. The default copies what ``get(_:range:)`` returns.
    func get(_ key: String, range: Range<Int>, into buffer: inout [UInt8]) throws

    /// The object's size, or nil when it is absent.
    func head(_ key: String) throws -> ObjectInfo?

    /// Every object whose key starts with `prefix`, sorted by key.
    func list(prefix: String) throws -> [ObjectInfo]

    /// Removes the objects; absent ones count as removed. Stores with a batch operation (S3
    /// DeleteObjects) use it for more than one key.
    func delete(keys: [String]) throws

    /// Removes what interrupted writers left under `prefix` that is at least `age` seconds old
    /// (S3 multipart uploads, local temporaries); returns how many. An empty prefix is the whole
    /// store (`tresor store clean`); leftovers not filed by key (local temporaries) are removed
    /// only then. Callers pass the policy's age, so another host's write in flight is never
    /// touched. A store that has no such leftovers returns 0.
    func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int

    /// Object versions, for stores that can keep them (S3 buckets with versioning); nil for a
    /// store that never keeps an older version of an object (a local directory). Wrappers pass
    /// their base's on: a wrapper that answered nil would hide versions from deletion.
    var versions: (any ObjectVersions)? { get }
}

/// Whether a store keeps older versions of overwritten and deleted objects.
public enum VersioningState: String, Sendable, Codable {
    /// Never enabled: an object has one version (S3's "null" version).
    case off
    case enabled
    /// Was enabled: versions made then are still there.
    case suspended
}

/// One version of an object, or a delete marker, as S3's ListObjectVersions reports it.
public struct ObjectVersion: Sendable, Equatable {
    public var key: String
    public var versionID: String
    public var isDeleteMarker: Bool
    public var size: Int

    public init(key: String, versionID: String, isDeleteMarker: Bool, size: Int) {
        self.key = key
        self.versionID = versionID
        self.isDeleteMarker = isDeleteMarker
        self.size = size
    }
}

/// The versioning side of a store (S3: GetBucketVersioning, ListObjectVersions, DeleteObjects
/// with version ids). Deleting a key in a versioned bucket only adds a delete marker; only
/// deleting each version removes the bytes.
public protocol ObjectVersions: Sendable {
    func versioning() throws -> VersioningState
    /// Every version and delete marker whose key starts with `prefix`, sorted by key.
    func listVersions(prefix: String) throws -> [ObjectVersion]
    /// Removes exactly these versions (and delete markers); absent ones count as removed.
    func deleteVersions(_ versions: [ObjectVersion]) throws
}

extension Store {
    @discardableResult
    public func put(_ key: String, _ data: [UInt8], ifAbsent: Bool = false) throws -> Bool {
        try data.withUnsafeBytes { try put(key, bytes: $0, options: PutOptions(ifAbsent: ifAbsent)) }
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool) throws -> Bool {
        try put(key, bytes: bytes, options: PutOptions(ifAbsent: ifAbsent))
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool, sha256: ObjectID) throws -> Bool {
        try put(key, bytes: bytes, options: PutOptions(ifAbsent: ifAbsent, sha256: sha256))
    }

    public func get(_ key: String) throws -> [UInt8] { try get(key, range: nil) }

    public func get(_ key: String, range: Range<Int>, into buffer: inout [UInt8]) throws {
        let bytes = try get(key, range: range)
        if buffer.count < bytes.count {
            buffer = bytes
        } else {
            buffer.replaceSubrange(0..<bytes.count, with: bytes)
        }
    }

    /// Removes one object; succeeds when it is already absent.
    public func delete(_ key: String) throws { try delete(keys: [key]) }

    /// Removes many objects; absent ones count as removed.
    public func deleteMany(_ keys: [String]) throws {
        if !keys.isEmpty { try delete(keys: keys) }
    }

    /// Stores that keep no versions (and test doubles) have none.
    public var versions: (any ObjectVersions)? { nil }
}

/// A store around another store that forwards every operation through one hook, ``around(_:_:_:)``
/// (restic's `backend/retry` and `backend/sema` are the model). The forwards are written once,
/// here; a wrapper implements the hook, and implements an operation itself only where it does
/// something other than forward (a cache answers `get`, a dry run swallows `put`).
public protocol StoreWrapper: Store {
    /// The store underneath.
    var base: any Store { get }
    /// Runs one forwarded operation: `key` is the key, the list prefix, or the first key of a
    /// batch delete. The default runs `body` as it is.
    func around<T>(_ operation: StoreOperation, _ key: String, _ body: () throws -> T) throws -> T
}

extension StoreWrapper {
    public var location: String { base.location }
    public var capabilities: StoreCapabilities { base.capabilities }

    public func around<T>(_ operation: StoreOperation, _ key: String, _ body: () throws -> T) throws -> T {
        try body()
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, options: PutOptions) throws -> Bool {
        try around(.put, key) { try base.put(key, bytes: bytes, options: options) }
    }

    public func get(_ key: String, range: Range<Int>?) throws -> [UInt8] {
        try around(.get, key) { try base.get(key, range: range) }
    }

    public func get(_ key: String, range: Range<Int>, into buffer: inout [UInt8]) throws {
        try around(.get, key) { try base.get(key, range: range, into: &buffer) }
    }

    public func head(_ key: String) throws -> ObjectInfo? { try around(.head, key) { try base.head(key) } }

    public func list(prefix: String) throws -> [ObjectInfo] { try around(.list, prefix) { try base.list(prefix: prefix) } }

    public func delete(keys: [String]) throws { try around(.delete, keys.first ?? "") { try base.delete(keys: keys) } }

    public func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int {
        try around(.cleanUploads, prefix) { try base.abortIncompleteUploads(prefix: prefix, olderThan: age) }
    }

    public var versions: (any ObjectVersions)? { base.versions }
}

/// Why a store operation failed.
public typealias StoreError = TresorError<StoreErrorCode>

public enum StoreErrorCode: String, Sendable, FailureCode {
    case notFound = "not_found"
    case invalidKey = "invalid_key"
    case io
    case badURL = "bad_url"
    case permission
    /// May succeed when tried again: a server error (5xx), throttling (429), a timeout or a
    /// dropped connection.
    case transient
    /// Bytes came back different from what was stored.
    case integrity
    /// The store is outside the tenant's region and no approval is on file (usage).
    case region

    public var kind: FailureKind {
        switch self {
        case .invalidKey, .badURL, .region: return .usage
        default: return .failed
        }
    }
}

extension StoreError {
    public static func notFound(_ key: String, in location: String) -> StoreError {
        StoreError(.notFound, "object \(key) not found in \(location)")
    }
}

/// Checks a key against the rules every store enforces.
public func validateStoreKey(_ key: String) throws {
    let segments = key.split(separator: "/", omittingEmptySubsequences: false)
    let ok =
        !key.isEmpty
        && segments.allSatisfy { seg in
            !seg.isEmpty && seg != "." && seg != ".."
                && seg.utf8.allSatisfy { c in
                    (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 45
                }
        }
    guard ok else { throw StoreError(.invalidKey, "invalid store key '\(key)'") }
}
