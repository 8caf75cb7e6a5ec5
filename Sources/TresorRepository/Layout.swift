import TresorCore

/// Where a tenant's objects live in a store. Every key of a tenant starts with
/// `tenants/<tenant>/`, so one prefix holds (and one prefix delete removes) all of a tenant's data.
public struct RepositoryLayout: Sendable {
    public let tenant: TenantID

    public init(tenant: TenantID) { self.tenant = tenant }

    /// `tenants/<tenant>/`
    public var prefix: String { "tenants/\(tenant.rawValue)/" }
    /// The tenant's plaintext, secret-free description of its repository (`TenantConfig`).
    public var config: String { prefix + "config" }
    /// Key envelopes: the tenant's data key wrapped by the master key.
    public var keysPrefix: String { prefix + "keys/" }
    public func key(_ id: String) -> String { keysPrefix + id }
    public var packsPrefix: String { prefix + "data/" }
    public func pack(_ id: ObjectID) -> String {
        let hex = id.hex
        return packsPrefix + hex.prefix(2) + "/" + hex
    }
    public var indexPrefix: String { prefix + "index/" }
    public func index(_ id: ObjectID) -> String { indexPrefix + id.hex }
    public var snapshotsPrefix: String { prefix + "snapshots/" }
    public func snapshot(_ id: ObjectID) -> String { snapshotsPrefix + id.hex }

    /// WAL objects: one sealed object per archived WAL file (``WALObject``).
    public var walPrefix: String { prefix + "wal/" }
    /// `wal/<timeline as 8 hex digits>/<file name>`; `.history` files are filed under their own
    /// timeline, like segments.
    public func wal(timeline: String, name: String) -> String { walPrefix + timeline + "/" + name }

    /// The id at the end of a pack, index or snapshot key.
    public static func id(fromKey key: String) -> ObjectID? {
        guard let last = key.split(separator: "/").last else { return nil }
        return ObjectID(hex: String(last))
    }
}

/// What a blob holds.
public enum BlobType: UInt8, Sendable, Codable {
    /// File or database content.
    case data = 0
    /// A piece of a snapshot's serialized file tree.
    case tree = 1
    /// Database content stored by page (a base backup's changed pages): whole 8 KiB pages, the
    /// last one possibly short, identified by ``PageGroupID`` rather than by one MAC of all of it,
    /// so each page is hashed once.
    case pages = 2
}

/// How a blob's payload is encoded before sealing.
public enum BlobCompression: UInt8, Sendable, Codable {
    case none = 0
    case zstd = 1
}
