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
/// concurrency limits, region guards, dry runs, fault injection) is a wrapper around a store.
public protocol Store: Sendable {
    /// A human-readable location without secrets, e.g. `file:///srv/backup` or `s3://bucket/prefix`.
    var location: String { get }
    var capabilities: StoreCapabilities { get }

    /// Stores `bytes` under `key`, replacing any object there unless `ifAbsent` is set, in which
    /// case an existing object is left alone and `false` is returned. The bytes are only read
    /// during the call. Buffers aligned to 4096 bytes let a local store write without copying
    /// through the page cache.
    @discardableResult
    func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool) throws -> Bool

    /// ``put(_:bytes:ifAbsent:)`` when the caller already knows the SHA-256 of `bytes` (packs and
    /// index objects are named by it): a store that needs the digest (S3 signs it, and the server
    /// refuses a body that does not match) skips hashing the bytes again. Others ignore it.
    @discardableResult
    func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool, sha256: ObjectID) throws -> Bool

    /// Reads the whole object, or `range` of it (byte offsets, end exclusive).
    /// Throws `StoreError.notFound` when the key is absent.
    func get(_ key: String, range: Range<Int>?) throws -> [UInt8]

    /// The object's size, or nil when it is absent.
    func head(_ key: String) throws -> ObjectInfo?

    /// Every object whose key starts with `prefix`, sorted by key.
    func list(prefix: String) throws -> [ObjectInfo]

    /// Removes the object; succeeds when it is already absent.
    func delete(_ key: String) throws

    /// Removes many objects; absent ones count as removed. Stores with a batch operation (S3
    /// DeleteObjects) use it; the default deletes one by one.
    func deleteMany(_ keys: [String]) throws

    /// Removes what interrupted writers left under `prefix` that is at least `age` seconds old
    /// (S3 multipart uploads, local temporaries); returns how many. An empty prefix is the whole
    /// store (`tresor store clean`); leftovers not filed by key (local temporaries) are removed
    /// only then. Callers pass the policy's age, so another host's write in flight is never
    /// touched. The default has none.
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
        try data.withUnsafeBytes { try put(key, bytes: $0, ifAbsent: ifAbsent) }
    }

    public func get(_ key: String) throws -> [UInt8] { try get(key, range: nil) }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool, sha256: ObjectID) throws -> Bool {
        try put(key, bytes: bytes, ifAbsent: ifAbsent)
    }

    public func deleteMany(_ keys: [String]) throws {
        for k in keys { try delete(k) }
    }

    public func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int { 0 }

    /// Stores that keep no versions (and test doubles) have none.
    public var versions: (any ObjectVersions)? { nil }
}

/// Why a store operation failed.
public struct StoreError: TresorFailure {
    public enum Code: String, Sendable {
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
    }

    public let code: Code
    public let message: String
    public let hint: String?

    public var kind: FailureKind {
        switch code {
        case .invalidKey, .badURL: return .usage
        default: return .failed
        }
    }

    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    public static func notFound(_ key: String, in location: String) -> StoreError {
        StoreError(.notFound, "object \(key) not found in \(location)")
    }
}

/// Checks a key against the rules every store enforces.
public func validateStoreKey(_ key: String) throws {
    let segments = key.split(separator: "/", omittingEmptySubsequences: false)
    let ok = !key.isEmpty && segments.allSatisfy { seg in
        !seg.isEmpty && seg != "." && seg != ".." &&
            seg.utf8.allSatisfy { c in
                (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 45
            }
    }
    guard ok else { throw StoreError(.invalidKey, "invalid store key '\(key)'") }
}
