import Foundation
import TresorCore
import TresorCrypto
import TresorStore

/// The plaintext, secret-free description of a tenant's repository at `tenants/<t>/config`:
/// enough for an independent reader to know how to chunk, identify, compress and seal.
public struct TenantConfig: Codable, Sendable, Equatable {
    public struct Chunker: Codable, Sendable, Equatable {
        public var algorithm = "fastcdc-gear-v1"
        public var minSize: Int
        public var averageSize: Int
        public var maxSize: Int
    }

    public var format = "tresor-tenant"
    public var version = 1
    public var tenant: String
    public var created: String
    public var chunker: Chunker
    public var chunkIDs = "hmac-sha256"
    public var encryption = "aes-256-gcm"
    public var compression = "zstd"
}

extension TenantConfig {
    /// Throws a ``RepositoryError/Code/corrupt`` error unless this is a config this version of
    /// Tresor can use for `tenant`: the format, algorithms and chunker sizes it writes (so a
    /// damaged size is a finding, not a failed precondition in the chunker).
    public func validate(tenant: String, key: String) throws {
        guard format == "tresor-tenant", version == 1, self.tenant == tenant else {
            throw RepositoryError(.corrupt, "\(key) describes another tenant or format")
        }
        guard chunker.algorithm == "fastcdc-gear-v1", chunkIDs == "hmac-sha256", encryption == "aes-256-gcm", compression == "zstd" else {
            throw RepositoryError(.corrupt, "\(key) names an algorithm Tresor does not use: damaged, or written by another version")
        }
        let avg = chunker.averageSize
        guard avg > 0, avg & (avg - 1) == 0, (6...40).contains(avg.trailingZeroBitCount),
              chunker.minSize >= 1, chunker.minSize <= avg, avg <= chunker.maxSize else {
            throw RepositoryError(.corrupt, "\(key) has chunker sizes no chunker accepts (\(chunker.minSize)/\(avg)/\(chunker.maxSize))")
        }
        guard TimeFormat.parse(created) != nil else {
            throw RepositoryError(.corrupt, "\(key) has a creation time that is not a time")
        }
    }
}

/// One tenant's repository in one store: its config, keys, index objects, packs and snapshots.
///
/// Opening it reads the config and unwraps the tenant's data key with the master key; a wrong
/// master key fails there, before anything is read or written.
public final class TenantRepository: Sendable {
    public let store: any Store
    public let layout: RepositoryLayout
    public let config: TenantConfig
    public let keys: TenantKeys
    public let chunker: FastCDC

    public var tenant: String { layout.tenant }

    init(store: any Store, layout: RepositoryLayout, config: TenantConfig, keys: TenantKeys) {
        self.store = store
        self.layout = layout
        self.config = config
        self.keys = keys
        self.chunker = FastCDC(minSize: config.chunker.minSize, averageSize: config.chunker.averageSize,
                               maxSize: config.chunker.maxSize, seed: keys.chunkerSeed)
    }

    /// Whether the tenant has a repository in `store`.
    public static func exists(store: any Store, tenant: String) throws -> Bool {
        try store.head(RepositoryLayout(tenant: tenant).config) != nil
    }

    /// Opens the tenant's repository, creating it (config and a fresh wrapped data key) when
    /// `create` is set and it does not exist yet. Chunker sizes of a new repository come from the
    /// policy; an existing repository keeps the sizes it was created with, so dedup keeps working.
    public static func open(store: any Store, tenant: String, master: MasterKey, policy: Policy.Backup,
                            clock: any Clock, create: Bool) throws -> TenantRepository {
        let layout = RepositoryLayout(tenant: tenant)
        let decoder = JSONDecoder()
        var configBytes: [UInt8]
        do {
            configBytes = try store.get(layout.config)
        } catch let e as StoreError where e.code == .notFound {
            guard create else {
                throw RepositoryError(.usage, "tenant '\(tenant)' has no backups in \(store.location)",
                                      hint: "run tresor docs backup \(tenant) first")
            }
            let config = TenantConfig(
                tenant: tenant, created: TimeFormat.string(clock.now()),
                chunker: .init(minSize: policy.chunkMin, averageSize: policy.chunkAvg, maxSize: policy.chunkMax))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let envelope = try KeyEnvelope.wrap(dataKey: SecureRandom.bytes(32), tenant: tenant, master: master, created: clock.now())
            try store.put(layout.key(envelope.id), Array(try encoder.encode(envelope)), ifAbsent: true)
            try store.put(layout.config, Array(try encoder.encode(config)), ifAbsent: true)
            configBytes = try store.get(layout.config)
        }
        let config: TenantConfig
        do {
            config = try decoder.decode(TenantConfig.self, from: Data(configBytes))
        } catch {
            throw RepositoryError(.corrupt, "\(layout.config) is not a valid tenant config")
        }
        try config.validate(tenant: tenant, key: layout.config)
        // Two first backups racing could each wrap a key; everyone uses the envelope that sorts
        // first, so they agree before any data is written.
        let envelopes = try store.list(prefix: layout.keysPrefix)
        guard let first = envelopes.first else {
            throw RepositoryError(.usage, "tenant '\(tenant)' has no key in \(store.location): its data was shredded",
                                  hint: "its backups can no longer be read")
        }
        let envelope: KeyEnvelope
        do {
            envelope = try decoder.decode(KeyEnvelope.self, from: Data(try store.get(first.key)))
        } catch let e as StoreError {
            throw e
        } catch {
            throw RepositoryError(.corrupt, "key envelope \(first.key) is not valid JSON")
        }
        let dataKey = try envelope.unwrap(master: master)
        return TenantRepository(store: store, layout: layout, config: config, keys: TenantKeys(dataKey: dataKey))
    }

    // MARK: index

    /// Reads every index object of the tenant (in parallel) into one in-memory index. The first
    /// damaged index object is thrown; ``loadIndexReportingDamage(threads:)`` names them all.
    public func loadIndex(threads: Int = 4) throws -> RepositoryIndex {
        let (index, damaged) = try loadIndexReportingDamage(threads: threads)
        if let first = damaged.first {
            throw RepositoryError(.corrupt, first.why, hint: "tresor check \(tenant); tresor repair index \(tenant)")
        }
        return index
    }

    /// Reads every index object it can into one index and names each damaged one (it does not
    /// match its name, fails authentication or does not parse) with the reason, instead of
    /// stopping at the first. Store failures (access, transport) are not damage and are thrown.
    public func loadIndexReportingDamage(threads: Int = 4) throws -> (index: RepositoryIndex, damaged: [(key: String, why: String)]) {
        let index = RepositoryIndex()
        let objects = try store.list(prefix: layout.indexPrefix)
        let errors = Locked<[Error]>([])
        let damaged = Locked<[(key: String, why: String)]>([])
        let queue = BlockingQueue<ObjectInfo>(capacity: max(1, objects.count))
        for o in objects { queue.push(o) }
        queue.close()
        runOnThreads(min(threads, max(1, objects.count)), name: "index") { _ in
            while let o = queue.pop() {
                do {
                    let file = try self.readIndexObject(o.key)
                    index.add(file, indexID: RepositoryLayout.id(fromKey: o.key))
                } catch where RepositoryError.isDamage(error) {
                    damaged.withLock { $0.append((o.key, RepositoryError.describe(error))) }
                } catch {
                    errors.withLock { $0.append(error) }
                }
            }
        }
        if let e = errors.current.first { throw e }
        return (index, damaged.current.sorted { $0.key < $1.key })
    }

    /// Reads, authenticates and parses one index object; its SHA-256 must equal its name.
    func readIndexObject(_ key: String) throws -> IndexFile {
        let sealed = try store.get(key)
        guard let named = RepositoryLayout.id(fromKey: key) else {
            throw RepositoryError(.corrupt, "index object \(key) has no id for a name")
        }
        guard SHA256.hash(sealed) == named else {
            throw RepositoryError(.corrupt, "index object \(key) does not match its name (SHA-256): damaged")
        }
        let plain = try SealedObject.open(sealed, kind: .index, keys: keys, name: key)
        return try IndexFile.decode(plain, name: key)
    }

    /// Seals and stores an index object; returns its id (SHA-256 of the stored bytes).
    @discardableResult
    public func writeIndex(_ file: IndexFile, level: Int) throws -> ObjectID {
        let sealed = try SealedObject.seal(file.encode(), kind: .index, keys: keys, level: level)
        let id = SHA256.hash(sealed)
        try store.put(layout.index(id), sealed, ifAbsent: true)
        return id
    }

    // MARK: snapshots

    /// Stores a manifest; its id is the SHA-256 of its JSON.
    public func saveSnapshot(_ manifest: SnapshotManifest, level: Int) throws -> ObjectID {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = Array(try encoder.encode(manifest))
        let id = SHA256.hash(json)
        let sealed = try SealedObject.seal(json, kind: .snapshot, keys: keys, level: level)
        try store.put(layout.snapshot(id), sealed, ifAbsent: true)
        return id
    }

    public func loadSnapshot(_ id: ObjectID) throws -> SnapshotManifest {
        let key = layout.snapshot(id)
        let sealed: [UInt8]
        do {
            sealed = try store.get(key)
        } catch let e as StoreError where e.code == .notFound {
            throw RepositoryError(.usage, "tenant '\(tenant)' has no snapshot \(id.short)", hint: "tresor snapshots \(tenant)")
        }
        let json = try SealedObject.open(sealed, kind: .snapshot, keys: keys, name: key)
        // A snapshot's name is the SHA-256 of its JSON: an authentic manifest stored under
        // another snapshot's name is refused too.
        guard SHA256.hash(json) == id else {
            throw RepositoryError(.corrupt, "snapshot \(key) does not match its name (SHA-256 of its manifest)")
        }
        do {
            return try JSONDecoder().decode(SnapshotManifest.self, from: Data(json))
        } catch {
            throw RepositoryError(.corrupt, "\(key) is not a valid snapshot manifest")
        }
    }

    /// Every snapshot of the tenant, oldest first. The first damaged one is thrown;
    /// ``snapshotsReportingDamage()`` names them all.
    public func snapshots() throws -> [(id: ObjectID, manifest: SnapshotManifest)] {
        let (good, damaged) = try snapshotsReportingDamage()
        if let first = damaged.first {
            throw RepositoryError(.corrupt, first.why, hint: "tresor repair snapshots \(tenant)")
        }
        return good
    }

    /// Every readable snapshot (oldest first), and each damaged snapshot object by key with the
    /// reason. A key under `snapshots/` that is not an id is damage too. Store failures are thrown.
    public func snapshotsReportingDamage() throws -> (snapshots: [(id: ObjectID, manifest: SnapshotManifest)], damaged: [(key: String, why: String)]) {
        var out: [(id: ObjectID, manifest: SnapshotManifest)] = []
        var damaged: [(key: String, why: String)] = []
        for o in try store.list(prefix: layout.snapshotsPrefix) {
            guard let id = RepositoryLayout.id(fromKey: o.key) else {
                damaged.append((o.key, "\(o.key) is not named by a snapshot id"))
                continue
            }
            do {
                out.append((id, try loadSnapshot(id)))
            } catch where RepositoryError.isDamage(error) {
                damaged.append((o.key, RepositoryError.describe(error)))
            }
        }
        return (out.sorted { ($0.manifest.time, $0.id.hex) < ($1.manifest.time, $1.id.hex) }, damaged)
    }

    // MARK: blobs

    /// Reads and opens one blob.
    public func readBlob(_ id: ObjectID, index: RepositoryIndex, opener: BlobOpener) throws -> [UInt8] {
        guard let loc = index.location(of: id) else {
            throw RepositoryError(.corrupt, "blob \(id.short) is not in the index of tenant '\(tenant)'")
        }
        let sealed = try store.get(layout.pack(loc.pack), range: loc.range)
        var out: [UInt8] = []
        try sealed.withUnsafeBytes { try opener.open($0, id: id, location: loc, into: &out) }
        return out
    }

    /// Reads a snapshot's file tree.
    public func loadTree(_ manifest: SnapshotManifest, index: RepositoryIndex) throws -> [TreeNode] {
        let opener = try BlobOpener(keys: keys)
        var bytes: [UInt8] = []
        for hex in manifest.tree {
            guard let id = ObjectID(hex: hex) else { throw RepositoryError(.corrupt, "snapshot lists a malformed tree id") }
            bytes += try readBlob(id, index: index, opener: opener)
        }
        return try TreeCodec.decode(bytes, name: "tree of snapshot at \(manifest.time)")
    }
}
