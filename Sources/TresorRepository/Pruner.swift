import Foundation
import TresorCore
import TresorCrypto
import TresorStore

/// What pruning one repository does (or, dry, would do).
public struct PruneResult: Codable, Sendable, Equatable {
    public var snapshotsDeleted = 0
    public var packsDeleted = 0
    public var packBytesFreed: UInt64 = 0
    public var indexesWritten = 0
    public var indexesDeleted = 0
    /// Packs no index lists: never deleted here (a concurrent writer may not have indexed them
    /// yet); `check` reports them.
    public var unindexedPacksLeft = 0
    /// Packs mostly garbage (policy `store.repack_garbage_percent`) whose needed blobs were
    /// copied into a new pack before the old one was deleted.
    public var packsRepacked = 0
    public var packsWritten = 0
    public init() {}
}

/// Deletes snapshots retention dropped and then every pack no remaining snapshot needs.
///
/// Order, so a crash at any point leaves a restorable repository: (1) dropped snapshot manifests
/// are deleted; (2) the snapshots left are read and every blob they reference is marked; (3) for
/// each index object that lists a pack about to go, a new index object listing its other packs is
/// written; only then (4) the old index objects and (5) the packs are deleted.
///
/// Concurrency: the caller holds the tenant's lock, which every writer of packs and snapshots
/// (docs backup, pg basebackup, repair, replicate) also takes, so no snapshot can start to
/// depend on a pack between the marking and the deletion. Packs no index lists are never
/// deleted (a writer of another host may have written one and not yet its index); WAL objects
/// are not packs and are never touched here (`wal-push` and `pg stream` take no tenant lock).
public struct Pruner {
    public let repo: TenantRepository

    /// A dry run passes a repository whose store is a `DryRunStore`: the same path runs, the
    /// result says what would go, and nothing is written or deleted.
    public init(repository: TenantRepository) {
        self.repo = repository
    }

    /// - Parameters:
    ///   - drop: snapshot ids to delete; every other snapshot in the store is kept.
    ///   - garbageFraction: a pack whose needed bytes are below `1 - garbageFraction` counts as
    ///     mostly garbage (reported; see the report's note on repacking).
    public func prune(drop: Set<ObjectID>, garbageFraction: Double) throws -> PruneResult {
        var result = PruneResult()
        let store = repo.store
        let layout = repo.layout
        let snapshots = try repo.snapshots()
        let present = Set(snapshots.map(\.id))
        let dropping = drop.intersection(present)
        // (1)
        for id in dropping.sorted() {
            try store.delete(layout.snapshot(id))
            result.snapshotsDeleted += 1
        }
        // (2)
        let index = try repo.loadIndex()
        var needed = BlobMarks()
        for (id, manifest) in snapshots where !dropping.contains(id) {
            for hex in manifest.tree {
                guard let t = ObjectID(hex: hex) else { throw RepositoryError(.corrupt, "snapshot \(id.short) lists a malformed tree id") }
                index.mark(CollectionOfOne(t), in: &needed)
            }
            let tree = try TreeNodeStream(repository: repo, index: index, manifest: manifest)
            while let node = try tree.next() { index.mark(node.chunks, in: &needed) }
        }
        var doomed = Set<ObjectID>()
        var repack: [ObjectID] = []
        let sizes = index.packSizes
        let usedByPack = index.usedBytesByPack(needed)
        for (pack, used) in usedByPack {
            if used == 0 {
                doomed.insert(pack)
                result.packBytesFreed += UInt64(sizes[pack] ?? 0)
            } else if Double(used) < Double(sizes[pack] ?? 0) * (1 - garbageFraction) {
                repack.append(pack)
            }
        }
        // An index may list a pack with no entries: nothing in it can be needed.
        for (pack, size) in sizes where usedByPack[pack] == nil && !doomed.contains(pack) {
            doomed.insert(pack)
            result.packBytesFreed += UInt64(size)
        }
        result.packsDeleted = doomed.count
        let listed = try store.list(prefix: layout.packsPrefix).compactMap { RepositoryLayout.id(fromKey: $0.key) }
        result.unindexedPacksLeft = listed.filter { sizes[$0] == nil }.count
        // Repack first: the needed blobs of each mostly-garbage pack go into a new pack, and a new
        // index object lists the new packs, before anything is deleted.
        var written: [IndexFile.Pack] = []
        var repackBlobs: [ObjectID: [(ObjectID, BlobLocation)]] = [:]
        for (id, loc) in index.blobs(inPacks: Set(repack)) where index.isMarked(id, in: needed) { repackBlobs[loc.pack, default: []].append((id, loc)) }
        for pack in repack.sorted() {
            let blobs = (repackBlobs[pack] ?? []).sorted { $0.1.offset < $1.1.offset }
            let old = try store.get(layout.pack(pack))
            guard old.count == sizes[pack] else {
                throw RepositoryError(.corrupt, "pack \(pack.short) has \(old.count) bytes, the index says \(sizes[pack] ?? 0)")
            }
            let (bytes, entries) = try Self.assemblePack(
                blobs.map { (id, loc) in
                    (
                        PackEntry(id: id, type: loc.type, compression: loc.compression, offset: 0, length: loc.length, rawLength: loc.rawLength),
                        old[loc.range]
                    )
                }, keys: repo.keys)
            let id = SHA256.hash(bytes)
            _ = try bytes.withUnsafeBytes { try store.put(layout.pack(id), bytes: $0, ifAbsent: true, sha256: id) }
            written.append(IndexFile.Pack(id: id, size: bytes.count, entries: entries))
            result.packBytesFreed += UInt64(old.count - bytes.count)
            doomed.insert(pack)
            result.packsRepacked += 1
        }
        if !written.isEmpty {
            _ = try repo.writeIndex(IndexFile(packs: written), level: 3)
            result.packsWritten = written.count
            result.indexesWritten += 1
        }
        guard !doomed.isEmpty else { return result }

        // (3) and (4): rewrite the index objects that list a doomed pack.
        for (indexID, packs) in index.indexObjects.sorted(by: { $0.key < $1.key }) where packs.contains(where: doomed.contains) {
            let file = try repo.readIndexObject(layout.index(indexID))
            let rest = file.packs.filter { !doomed.contains($0.id) }
            if !rest.isEmpty {
                _ = try repo.writeIndex(IndexFile(packs: rest), level: 3)
                result.indexesWritten += 1
            }
            try store.delete(layout.index(indexID))
            result.indexesDeleted += 1
        }
        // (5)
        try store.deleteMany(doomed.sorted().map(layout.pack))
        return result
    }

    /// A pack of already sealed blobs (their associated data binds them to id, type and
    /// compression, not to a pack, so they move unchanged) with a freshly sealed header.
    static func assemblePack(_ blobs: [(PackEntry, ArraySlice<UInt8>)], keys: TenantKeys) throws -> (bytes: [UInt8], entries: [PackEntry]) {
        var out: [UInt8] = []
        out.reserveCapacity(blobs.reduce(0) { $0 + $1.1.count } + 64 + blobs.count * 44)
        var entries: [PackEntry] = []
        for (entry, sealed) in blobs {
            var e = entry
            e.offset = UInt32(out.count)
            entries.append(e)
            out += sealed
        }
        var w = ByteWriter(capacity: 16 + entries.count * 44)
        w.raw(PackFormat.headerMagic)
        w.varint(entries.count)
        for e in entries { e.encode(into: &w) }
        let header = try AESGCM(key: keys.encryption).seal(w.bytes, aad: PackFormat.headerAAD)
        out += header
        withUnsafeBytes(of: UInt32(header.count).littleEndian) { out += $0 }
        out += PackFormat.trailerMagic
        return (out, entries)
    }
}
