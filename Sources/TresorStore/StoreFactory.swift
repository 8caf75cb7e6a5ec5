import Foundation
import TresorCore

/// The S3 requests one command sent, counted by its S3 stores at the HTTP level (retries and
/// multipart parts included: what a provider bills). One instance per command, handed to the
/// ``StoreFactory`` that opens its stores; `TRESOR_STORE_STATS` writes it out.
public final class StoreTraffic: Sendable {
    private let counts = Locked(S3Traffic())

    public init() {}

    /// What was counted so far.
    public var current: S3Traffic { counts.current }

    func sent(method: String, bytes: Int) {
        counts.withLock { t in
            t.requests += 1
            t.bytesSent += UInt64(bytes)
            t.byMethod[method, default: 0] += 1
        }
    }

    func received(bytes: Int) { counts.withLock { $0.bytesReceived += UInt64(bytes) } }
}

/// Composes a store once, the same way for every caller, from the inside out:
/// the store the URL names (S3 counts its requests into ``traffic``); for S3 a
/// ``LimitedStore`` (at most ``connectionLimit`` operations in flight) inside a ``RetryingStore``;
/// then the caller's own wrapper (`check` watches for access failures); a ``CachedStore`` for
/// immutable objects of a store without cheap ranged reads; a ``RegionGuardStore`` when the data
/// is a tenant's; a ``DryRunStore`` when nothing may change.
public struct StoreFactory: Sendable {
    /// The S3 credentials, asked for only when an S3 store is opened (a home with local stores
    /// needs none).
    public var credentials: @Sendable () throws -> S3Credentials
    /// Where this command's S3 requests are counted.
    public let traffic: StoreTraffic
    /// Operations in flight against one S3 store at most.
    public var connectionLimit: Int
    public var retryPolicy: RetryingStore.Policy

    public init(
        credentials: @escaping @Sendable () throws -> S3Credentials, traffic: StoreTraffic = StoreTraffic(),
        connectionLimit: Int = StoreURL.s3ConnectionLimit, retryPolicy: RetryingStore.Policy = RetryingStore.Policy()
    ) {
        self.credentials = credentials
        self.traffic = traffic
        self.connectionLimit = connectionLimit
        self.retryPolicy = retryPolicy
    }

    /// What to cache: immutable objects under `prefixes`, in `directory`.
    public struct Cache: Sendable {
        public var directory: URL
        public var prefixes: [String]

        public init(directory: URL, prefixes: [String]) {
            self.directory = directory
            self.prefixes = prefixes
        }
    }

    /// Opens the store `url` names with its wrappers. A `placement` outside the tenant's region
    /// without an approval is refused here, before the store is opened or created. `create` makes
    /// a missing directory or bucket. `wrap` goes around the retried store, inside the cache.
    public func open(
        url: String, create: Bool, placement: RegionPlacement? = nil, cache: Cache? = nil,
        dryRun: Bool = false, wrap: (any Store) -> any Store = { $0 }
    ) throws -> any Store {
        try placement?.check()
        var store = wrap(try base(StoreURL.parse(url), create: create))
        if let cache, !store.capabilities.cheapRangedReads {
            store = try CachedStore(base: store, directory: cache.directory, prefixes: cache.prefixes)
        }
        if let placement { store = RegionGuardStore(store, placement: placement) }
        if dryRun { store = DryRunStore(store) }
        return store
    }

    /// The store a URL names, retried and limited when it is remote.
    func base(_ url: StoreURL, create: Bool) throws -> any Store {
        switch url {
        case .file(let path):
            return try LocalStore(root: URL(fileURLWithPath: path), create: create)
        case .s3(let location):
            let s3 = try S3Store(location, credentials: try credentials(), traffic: traffic)
            let retrying = RetryingStore(LimitedStore(s3, limit: connectionLimit), policy: retryPolicy)
            if create { try retrying.retrying { try s3.ensureBucket() } }
            return retrying
        }
    }
}
