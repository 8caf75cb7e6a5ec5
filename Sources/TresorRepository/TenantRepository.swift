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
    /// 3 since configs carry a ``mac``; 2 named their data key without one; version 1 configs
    /// (no ``dataKey``) are still read.
    public var version = 3
    public var tenant: String
    public var created: String
    public var chunker: Chunker
    public var chunkIDs = "hmac-sha256"
    public var encryption = "aes-256-gcm"
    public var compression = "zstd"
    /// The fingerprint (``KeyEnvelope/fingerprint(dataKey:)``) of the one data key of this
    /// repository. Every opener uses an envelope that wraps this key, so two creators racing
    /// never write under different keys. Absent in version 1 configs.
    public var dataKey: String?
    /// Version 3: HMAC-SHA-256 (hex) of ``authenticatedText`` under a key derived from the data
    /// key (`HKDF-SHA256(data key, "tresor config mac v1")`). The config is plaintext so that a
    /// reader knows how to chunk before it holds a key; the MAC makes a flipped digit of a size
    /// or of the creation time a finding once the data key is open, not a silently different
    /// repository. Absent in versions 1 and 2.
    public var mac: String?

    /// The exact bytes the ``mac`` covers: every member but the MAC, one per line.
    public var authenticatedText: [UInt8] {
        Array(
            ("tresor-config-v3\n\(format)\n\(version)\n\(tenant)\n\(created)\n"
                + "\(chunker.algorithm) \(chunker.minSize) \(chunker.averageSize) \(chunker.maxSize)\n"
                + "\(chunkIDs) \(encryption) \(compression)\n\(dataKey ?? "")\n").utf8)
    }

    /// The MAC of ``authenticatedText`` under `dataKey`, as hex.
    public func computeMAC(dataKey key: [UInt8]) -> String {
        HMACSHA256(key: HKDF.sha256(ikm: key, salt: [], info: "tresor config mac v1", count: 32)).mac(authenticatedText).hex
    }
}

extension TenantConfig {
    /// Throws a ``RepositoryError/Code/corrupt`` error unless this is a config this version of
    /// Tresor can use for `tenant`: the format, algorithms and chunker sizes it writes (so a
    /// damaged size is a finding, not a failed precondition in the chunker).
    public func validate(tenant: TenantID, key: String) throws {
        guard format == "tresor-tenant", self.tenant == tenant.rawValue,
            version == 1 || (version == 2 && dataKey != nil) || (version == 3 && dataKey != nil && mac != nil)
        else {
            throw RepositoryError(.corrupt, "\(key) describes another tenant or format")
        }
        guard chunker.algorithm == "fastcdc-gear-v1", chunkIDs == "hmac-sha256", encryption == "aes-256-gcm", compression == "zstd" else {
            throw RepositoryError(.corrupt, "\(key) names an algorithm Tresor does not use: damaged, or written by another version")
        }
        let avg = chunker.averageSize
        guard avg > 0, avg & (avg - 1) == 0, (6...40).contains(avg.trailingZeroBitCount),
            chunker.minSize >= 1, chunker.minSize <= avg, avg <= chunker.maxSize
        else {
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
    /// Key envelopes of the tenant that could not be used (damaged, moved from another tenant,
    /// under an unknown master key, or wrapping a key the config does not name), one line each.
    /// Opening succeeded with another envelope; callers that check a repository report these.
    public let keyProblems: [String]

    public var tenant: TenantID { layout.tenant }

    init(store: any Store, layout: RepositoryLayout, config: TenantConfig, keys: TenantKeys, keyProblems: [String] = []) {
        self.keyProblems = keyProblems
        self.store = store
        self.layout = layout
        self.config = config
        self.keys = keys
        self.chunker = FastCDC(
            minSize: config.chunker.minSize, averageSize: config.chunker.averageSize,
            maxSize: config.chunker.maxSize, seed: keys.chunkerSeed)
    }

    /// Whether the tenant has a repository in `store`.
    public static func exists(store: any Store, tenant: TenantID) throws -> Bool {
        try store.head(RepositoryLayout(tenant: tenant).config) != nil
    }

    /// Opens the tenant's repository, creating it (config and a fresh wrapped data key) when
    /// `create` is set and it does not exist yet. Chunker sizes of a new repository come from the
    /// policy; an existing repository keeps the sizes it was created with, so dedup keeps working.
    ///
    /// Creation writes an envelope, then the config with `ifAbsent`; the config names the data
    /// key (by fingerprint), so of several creators racing, every one ends up with the key of the
    /// config that won, and a loser removes its own, unused envelope. Opening tries the envelopes
    /// in key order with `master`, then with each of `previousMasters` (a key rotation in
    /// progress), and takes the first that opens and wraps the config's data key. Envelopes that
    /// cannot be read are listed in ``keyProblems``; only when none opens does opening fail.
    public static func open(
        store: any Store, tenant: TenantID, master: MasterKey, previousMasters: [MasterKey] = [],
        policy: Policy.Backup, clock: any Clock, create: Bool
    ) throws -> TenantRepository {
        let layout = RepositoryLayout(tenant: tenant)
        var configBytes: [UInt8]
        do {
            configBytes = try store.get(layout.config)
        } catch let e as StoreError where e.code == .notFound {
            guard create else {
                throw RepositoryError(
                    .usage, "tenant '\(tenant)' has no backups in \(store.location)",
                    hint: "run tresor docs backup \(tenant) first")
            }
            configBytes = try createRepository(store: store, layout: layout, master: master, policy: policy, clock: clock)
        }
        let config: TenantConfig
        do {
            config = try JSONDecoder().decode(TenantConfig.self, from: Data(configBytes))
        } catch {
            throw RepositoryError(.corrupt, "\(layout.config) is not a valid tenant config")
        }
        try config.validate(tenant: tenant, key: layout.config)
        let (dataKey, problems) = try findDataKey(
            store: store, layout: layout, fingerprint: config.dataKey,
            masters: [master] + previousMasters)
        if let mac = config.mac, mac != config.computeMAC(dataKey: dataKey) {
            throw RepositoryError(
                .corrupt, "\(layout.config) fails authentication: damaged (a chunker size or the creation time differs from what was written)",
                hint: "tresor check \(tenant); restore the config object from the offsite copy (tresor check \(tenant) --store NAME)")
        }
        return TenantRepository(
            store: store, layout: layout, config: config, keys: TenantKeys(dataKey: dataKey),
            keyProblems: problems)
    }

    /// Writes a new repository's envelope and config; returns the config that won (ours, or a
    /// racing creator's).
    private static func createRepository(
        store: any Store, layout: RepositoryLayout, master: MasterKey,
        policy: Policy.Backup, clock: any Clock
    ) throws -> [UInt8] {
        let dataKey = SecureRandom.bytes(32)
        var config = TenantConfig(
            tenant: layout.tenant.rawValue, created: TimeFormat.string(clock.now()),
            chunker: .init(minSize: policy.chunkMin, averageSize: policy.chunkAvg, maxSize: policy.chunkMax),
            dataKey: KeyEnvelope.fingerprint(dataKey: dataKey))
        config.mac = config.computeMAC(dataKey: dataKey)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let envelope = try KeyEnvelope.wrap(dataKey: dataKey, tenant: layout.tenant, master: master, created: clock.now())
        // The envelope first: a config must never name a key no envelope holds.
        try store.put(layout.key(envelope.id), try envelope.encoded(), ifAbsent: true)
        let won = try store.put(layout.config, Array(try encoder.encode(config)), ifAbsent: true)
        if !won {
            // Another creator's config is in place and names its own key; nothing was written
            // under ours, so its envelope goes (one tenant, one data key).
            try store.delete(layout.key(envelope.id))
        }
        return try store.get(layout.config)
    }

    /// The data key: from the first envelope (in key order) that opens with one of `masters` and,
    /// when `fingerprint` is set, wraps that key. Returns the problems of the envelopes passed over.
    static func findDataKey(
        store: any Store, layout: RepositoryLayout, fingerprint: String?,
        masters: [MasterKey]
    ) throws -> (key: [UInt8], problems: [String]) {
        var problems: [String] = []
        var wrongMaster = 0
        // An envelope can vanish between list and get when a key rotation replaces it; its
        // replacement was stored before, so a second listing finds it.
        for attempt in 0..<2 {
            problems = []
            wrongMaster = 0
            var vanished = false
            let envelopes = try store.list(prefix: layout.keysPrefix)
            if envelopes.isEmpty && attempt == 0 { continue }
            for object in envelopes {
                let id = String(object.key.dropFirst(layout.keysPrefix.count))
                let bytes: [UInt8]
                do {
                    bytes = try store.get(object.key)
                } catch let e as StoreError where e.code == .notFound {
                    vanished = true
                    continue
                }
                do {
                    let envelope = try KeyEnvelope.decode(bytes, key: object.key)
                    let key = try envelope.unwrap(anyOf: masters, tenant: layout.tenant, id: id)
                    if let fingerprint, KeyEnvelope.fingerprint(dataKey: key) != fingerprint {
                        problems.append("\(object.key): wraps another data key than the config names (left by a creator that lost a race)")
                        continue
                    }
                    return (key, problems)
                } catch let e as RepositoryError {
                    if e.code == .usage { wrongMaster += 1 }
                    problems.append("\(object.key): \(e.message)")
                }
            }
            if !vanished { break }
        }
        if problems.isEmpty {
            throw RepositoryError(
                .usage, "tenant '\(layout.tenant)' has no key in \(store.location): its data was shredded",
                hint: "its backups can no longer be read")
        }
        if wrongMaster == problems.count {
            throw RepositoryError(
                .usage, "wrong master key: it opens none of the \(problems.count) key envelope(s) of tenant '\(layout.tenant)'",
                hint: "use the master key this installation was initialised with (HOME/keys/master.key)")
        }
        throw RepositoryError(.corrupt, "no key envelope of tenant '\(layout.tenant)' opens: " + problems.joined(separator: "; "))
    }

    /// Refuses a fixed chunk size the repository cannot hold: chunks are at most the chunker
    /// maximum fixed when the repository was created, whatever the policy says today.
    public func validateFixedChunkSize(_ bytes: Int, policyKey: String) throws {
        guard bytes <= config.chunker.maxSize else {
            throw RepositoryError(
                .usage, "\(policyKey) is \(bytes) bytes, more than the \(config.chunker.maxSize)-byte chunk maximum of tenant '\(tenant)''s repository",
                hint: "set \(policyKey) to at most \(config.chunker.maxSize) (a repository keeps the chunk sizes it was created with)")
        }
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
                } catch  where RepositoryError.isDamage(error) {
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
        return try SnapshotManifest.decode(json, key: key)
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
            } catch  where RepositoryError.isDamage(error) {
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
