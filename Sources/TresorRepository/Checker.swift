import TresorCore
import TresorCrypto
import TresorStore

/// Verifies a tenant's repository.
///
/// The structure check needs no pack data: every index entry's pack exists with the size the
/// index records, every snapshot's tree can be read, and every chunk a snapshot needs is indexed.
/// With `readData` (or a subset percentage) each selected pack is read whole: its SHA-256 must
/// equal its name, its header must agree with the index, and every blob must authenticate,
/// decompress and hash (keyed) to its id. Damage is reported as findings naming the packs and
/// the snapshots and files that need them; it is a result, not an error.
///
/// The check never stops at the first damaged object: a damaged index object is named and the
/// packs it listed are described from their own headers instead, so their data is still checked;
/// a damaged snapshot object is named and the other snapshots are checked. Only a store that
/// cannot be read (access refused, transport failure) stops it, as a failed job.
public struct Checker {
    /// What the check found.
    public struct Report: Sendable, Codable {
        public var snapshots = 0
        public var packs = 0
        public var blobs = 0
        public var packsRead = 0
        public var bytesRead: UInt64 = 0
        /// Pack id → what is wrong with it.
        public var damagedPacks: [String: String] = [:]
        /// Other problems (missing blobs, unreadable snapshots).
        public var problems: [String] = []
        /// Index object key → what is wrong with it (`tresor repair index` replaces them).
        public var damagedIndexes: [String: String] = [:]
        /// Snapshot objects that cannot be read, with what they covered when the catalog knows.
        public var damagedSnapshots: [LostSnapshot] = []
        /// Key envelope (or config) key → what is wrong with it (filled in by the engine).
        public var damagedKeys: [String: String] = [:]
        /// Packs no healthy index object lists that were described from their own headers
        /// (because an index object is damaged).
        public var packsDescribedFromHeaders = 0
        /// Snapshot id → paths that cannot be restored intact.
        public var affected: [String: [String]] = [:]
        /// Packs in the store that no index lists (left by an interrupted run; harmless).
        public var unreferencedPacks = 0
        /// Archived PostgreSQL WAL files, and how many were read (filled in by the engine, which
        /// adds WAL problems to `problems`).
        public var walFiles = 0
        public var walFilesRead = 0

        public init() {}

        public var isClean: Bool {
            damagedPacks.isEmpty && problems.isEmpty && damagedIndexes.isEmpty && damagedSnapshots.isEmpty && damagedKeys.isEmpty
        }
    }

    /// A snapshot object that cannot be read: its key, why, and what it covered as far as the
    /// catalog's record of the run that made it says (nil when the catalog does not know).
    public struct LostSnapshot: Sendable, Codable, Equatable {
        public var key: String
        public var why: String
        public var time: String?
        public var kind: SnapshotKind?
        public var roots: [String]?
        public var files: Int?

        public init(key: String, why: String) {
            self.key = key
            self.why = why
        }
    }

    public enum ReadData: Sendable, Equatable {
        case none
        case all
        /// Percentage of packs (0–100), chosen at random.
        case subset(Double)
    }

    let repo: TenantRepository
    let threads: Int
    /// Called as packs are read (with `--read-data`): packs read, bytes read, bytes to read.
    /// From the checking threads, one call at a time.
    public var progress: (@Sendable (_ packs: Int, _ bytes: UInt64, _ totalBytes: UInt64) -> Void)?

    public init(repository: TenantRepository, threads: Int = max(2, availableCores)) {
        self.repo = repository
        self.threads = threads
    }

    public func run(readData: ReadData) throws -> Report {
        var report = Report()
        let (index, damagedIndexes) = try repo.loadIndexReportingDamage()
        for d in damagedIndexes { report.damagedIndexes[d.key] = d.why }
        var present: [ObjectID: Int] = [:]
        for o in try repo.store.list(prefix: repo.layout.packsPrefix) {
            if let id = RepositoryLayout.id(fromKey: o.key) { present[id] = o.size }
        }
        var damaged: [ObjectID: String] = [:]
        let indexed = index.packSizes
        var unreferenced = present.filter { indexed[$0.key] == nil }
        if !damagedIndexes.isEmpty && !unreferenced.isEmpty {
            // The packs a damaged index object listed are among these: describe them from their
            // headers so their data and the snapshots that need them are still checked.
            let (described, bad) = try repo.describePacksFromHeaders(unreferenced)
            index.add(IndexFile(packs: described), indexID: nil)
            report.packsDescribedFromHeaders = described.count
            for (id, why) in bad { damaged[id] = "no index lists it and its header is damaged: \(why)" }
            unreferenced = [:]
        }
        let expected = index.packSizes
        report.packs = expected.count
        report.blobs = index.blobCount
        report.unreferencedPacks = unreferenced.count
        for (id, size) in expected {
            guard let actual = present[id] else {
                damaged[id] = "missing from the store"
                continue
            }
            if actual != size { damaged[id] = "has \(actual) bytes, the index says \(size)" }
        }

        if readData != .none {
            var toRead = expected.keys.filter { damaged[$0] == nil }.sorted()
            if case .subset(let pct) = readData {
                let n = Int((Double(toRead.count) * pct / 100).rounded(.up))
                toRead = Array(toRead.shuffled().prefix(n))
            }
            // Per pack only a count: the header's blobs are looked up in the index one by one
            // (grouping the index by pack would hold a second copy of it, ~100 bytes a blob).
            let countsByPack = index.blobCountsByPack()
            let queue = BlockingQueue<ObjectID>(capacity: max(1, toRead.count))
            for p in toRead { queue.push(p) }
            queue.close()
            let found = Locked([ObjectID: String]())
            let failure = Locked(Error?.none)
            let counters = Locked((packs: 0, bytes: UInt64(0)))
            let keys = repo.keys
            let store = repo.store
            let layout = repo.layout
            let progress = self.progress
            let total = toRead.reduce(UInt64(0)) { $0 + UInt64(expected[$1] ?? 0) }
            runOnThreads(min(threads, max(1, toRead.count)), name: "check") { _ in
                let hmac = HMACSHA256(key: keys.chunkID)
                let pageGroups = PageGroupID(keys: keys)
                var plain: [UInt8] = []
                do {
                    let opener = try BlobOpener(keys: keys)
                    while let pack = queue.pop() {
                        if failure.current != nil { return }
                        let problem = try Self.verify(
                            pack: pack, size: expected[pack] ?? 0, indexed: countsByPack[pack] ?? 0, index: index,
                            store: store, layout: layout, keys: keys, hmac: hmac, pageGroups: pageGroups, opener: opener, plain: &plain,
                            counters: counters)
                        if let problem { found.withLock { $0[pack] = problem } }
                        if let progress { counters.withLock { progress($0.packs, $0.bytes, total) } }
                    }
                } catch {
                    // Not damage (that is a finding, returned above): the store could not be
                    // read, so the check cannot say anything about the rest. A failed job.
                    failure.withLock { if $0 == nil { $0 = error } }
                }
            }
            if let e = failure.current { throw e }
            for (k, v) in found.current { damaged[k] = v }
            report.packsRead = counters.current.packs
            report.bytesRead = counters.current.bytes
        }

        // Map damage to snapshots and files, and check every snapshot's references.
        var damagedBlobs = Set<ObjectID>()
        if !damaged.isEmpty {
            for (id, _) in index.blobs(inPacks: Set(damaged.keys)) { damagedBlobs.insert(id) }
        }
        let (snapshots, damagedSnapshots) = try repo.snapshotsReportingDamage()
        report.damagedSnapshots = damagedSnapshots.map { LostSnapshot(key: $0.key, why: $0.why) }
        for (id, manifest) in snapshots {
            report.snapshots += 1
            let treeIDs = manifest.tree.compactMap(ObjectID.init(hex:))
            if treeIDs.contains(where: { damagedBlobs.contains($0) || !index.contains($0) }) {
                report.affected[id.hex] = ["(the whole snapshot: its file list is damaged)"]
                continue
            }
            // Node by node, so a tree of millions of entries is never held whole.
            var paths: [String] = []
            var missing: [String] = []
            do {
                let tree = try TreeNodeStream(repository: repo, index: index, manifest: manifest)
                while let n = try tree.next() {
                    guard n.kind == .file else { continue }
                    if n.chunks.contains(where: { damagedBlobs.contains($0) }) {
                        paths.append(n.displayPath)
                    } else if let chunk = n.chunks.first(where: { !index.contains($0) }) {
                        missing.append("snapshot \(id.short): \(n.displayPath) needs chunk \(chunk.short), which no index lists")
                        paths.append(n.displayPath)
                    } else if let bad = n.slices.first(where: { s in
                        index.location(of: n.chunks[Int(s.chunk)]).map { UInt64(s.offset) + UInt64(s.length) > UInt64($0.rawLength) } ?? true
                    }) {
                        // A paged file's slice must lie inside the chunk it names.
                        missing.append("snapshot \(id.short): \(n.displayPath) has a slice past the end of chunk \(n.chunks[Int(bad.chunk)].short)")
                        paths.append(n.displayPath)
                    } else if let bad = n.pageDeltas.first(where: { d in
                        index.location(of: n.chunks[Int(d.chunk)]).map { UInt64(d.offset) + UInt64(d.length) > UInt64($0.rawLength) } ?? true
                    }) {
                        // A page delta, likewise.
                        missing.append("snapshot \(id.short): \(n.displayPath) has a page delta past the end of chunk \(n.chunks[Int(bad.chunk)].short)")
                        paths.append(n.displayPath)
                    }
                }
            } catch  where RepositoryError.isDamage(error) {
                report.problems.append("snapshot \(id.short): cannot read its file list: \(RepositoryError.describe(error))")
                report.affected[id.hex] = ["(the whole snapshot: its file list is damaged)"]
                continue
            }
            report.problems += missing
            if !paths.isEmpty { report.affected[id.hex] = paths }
        }
        for (k, v) in damaged { report.damagedPacks[k.hex] = v }
        return report
    }

    /// Reads one pack in bounded windows: trailer and header first, then the blobs in order,
    /// hashing everything so the pack's name (its SHA-256) is checked too. Returns what is wrong
    /// with the pack; throws only when the store cannot be read (not damage).
    /// `indexed` is how many blobs the index places in this pack: every one of them must be in
    /// the header at the offset and length the index gives.
    private static func verify(
        pack: ObjectID, size: Int, indexed: Int, index: RepositoryIndex, store: any Store,
        layout: RepositoryLayout, keys: TenantKeys, hmac: HMACSHA256, pageGroups: PageGroupID, opener: BlobOpener,
        plain: inout [UInt8], counters: Locked<(packs: Int, bytes: UInt64)>
    ) throws -> String? {
        let key = layout.pack(pack)
        do {
            let stored = try PackFormat.readHeader(store: store, key: key, size: size, keys: keys, name: pack.short)
            let header = stored.entries
            // The index holds one location per blob, and header entries never share an offset
            // (they tile the pack), so each indexed blob matches at most one entry: the count of
            // matches equals `indexed` exactly when every indexed blob is where the index says.
            var matched = 0
            for e in header {
                if let loc = index.location(of: e.id), loc.pack == pack, loc.offset == e.offset, loc.length == e.length { matched += 1 }
            }
            if matched != indexed {
                let inHeader = Set(header.map { HeaderPlace(id: $0.id, offset: $0.offset, length: $0.length) })
                let lost = index.blobs(inPacks: [pack]).map(\.0).sorted().first {
                    guard let loc = index.location(of: $0) else { return false }
                    return !inHeader.contains(HeaderPlace(id: $0, offset: loc.offset, length: loc.length))
                }
                return "header does not list blob \(lost?.short ?? "?") where the index says"
            }
            // The header's blobs tile the pack (readHeader checks), so hashing the windows and
            // the header covers every byte.
            let hasher = SHA256Hasher()
            var read = stored.trailer.count + stored.sealedHeader.count
            for window in PackFormat.readWindows(
                header.map { Int($0.offset)..<Int($0.offset + $0.length) },
                maxBytes: PackFormat.readWindowBytes)
            {
                let bytes = try store.get(key, range: window.range)
                read += bytes.count
                hasher.update(bytes)
                for e in header[window.members] {
                    let loc = BlobLocation(
                        pack: pack, offset: e.offset, length: e.length, rawLength: e.rawLength,
                        type: e.type, compression: e.compression)
                    try bytes.withUnsafeBytes { all in
                        let s = Int(e.offset) - window.range.lowerBound
                        try opener.open(UnsafeRawBufferPointer(rebasing: all[s..<s + Int(e.length)]), id: e.id, location: loc, into: &plain)
                    }
                    let actual = plain.withUnsafeBytes { e.type == .pages ? pageGroups.id(of: $0) : hmac.mac($0) }
                    guard actual == e.id else { return "blob \(e.id.short) does not hash to its id" }
                }
            }
            hasher.update(stored.sealedHeader)
            hasher.update(stored.trailer)
            counters.withLock {
                $0.packs += 1
                $0.bytes += UInt64(read)
            }
            guard hasher.finalize() == pack else { return "content does not match its name (SHA-256): damaged" }
        } catch  where RepositoryError.isDamage(error) {
            return RepositoryError.describe(error)
        } catch let e as StoreError where e.code == .notFound {
            return "missing from the store"
        }
        return nil
    }

    private struct HeaderPlace: Hashable {
        var id: ObjectID
        var offset: UInt32
        var length: UInt32
    }
}
