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
        /// Snapshot id → paths that cannot be restored intact.
        public var affected: [String: [String]] = [:]
        /// Packs in the store that no index lists (left by an interrupted run; harmless).
        public var unreferencedPacks = 0
        /// Archived PostgreSQL WAL files, and how many were read (filled in by the engine, which
        /// adds WAL problems to `problems`).
        public var walFiles = 0
        public var walFilesRead = 0

        public var isClean: Bool { damagedPacks.isEmpty && problems.isEmpty }
    }

    public enum ReadData: Sendable, Equatable {
        case none
        case all
        /// Percentage of packs (0–100), chosen at random.
        case subset(Double)
    }

    let repo: TenantRepository
    let threads: Int

    public init(repository: TenantRepository, threads: Int = max(2, availableCores)) {
        self.repo = repository
        self.threads = threads
    }

    public func run(readData: ReadData) throws -> Report {
        var report = Report()
        let index = try repo.loadIndex()
        let expected = index.packSizes
        report.packs = expected.count
        report.blobs = index.blobCount
        var present: [ObjectID: Int] = [:]
        for o in try repo.store.list(prefix: repo.layout.packsPrefix) {
            if let id = RepositoryLayout.id(fromKey: o.key) { present[id] = o.size }
        }
        report.unreferencedPacks = present.keys.filter { expected[$0] == nil }.count
        var damaged: [ObjectID: String] = [:]
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
            let byPack = index.blobsByPack()
            let queue = BlockingQueue<ObjectID>(capacity: max(1, toRead.count))
            for p in toRead { queue.push(p) }
            queue.close()
            let found = Locked([ObjectID: String]())
            let counters = Locked((packs: 0, bytes: UInt64(0)))
            let keys = repo.keys
            let store = repo.store
            let layout = repo.layout
            runOnThreads(min(threads, max(1, toRead.count)), name: "check") { _ in
                let hmac = HMACSHA256(key: keys.chunkID)
                guard let opener = try? BlobOpener(keys: keys) else { return }
                var plain: [UInt8] = []
                while let pack = queue.pop() {
                    let problem = Self.verify(pack: pack, size: expected[pack] ?? 0, blobs: byPack[pack] ?? [], store: store, layout: layout,
                                              keys: keys, hmac: hmac, opener: opener, plain: &plain, counters: counters)
                    if let problem { found.withLock { $0[pack] = problem } }
                }
            }
            for (k, v) in found.current { damaged[k] = v }
            report.packsRead = counters.current.packs
            report.bytesRead = counters.current.bytes
        }

        // Map damage to snapshots and files, and check every snapshot's references.
        var damagedBlobs = Set<ObjectID>()
        if !damaged.isEmpty {
            for (pack, blobs) in index.blobsByPack() where damaged[pack] != nil {
                for (id, _) in blobs { damagedBlobs.insert(id) }
            }
        }
        for (id, manifest) in try repo.snapshots() {
            report.snapshots += 1
            let treeIDs = manifest.tree.compactMap(ObjectID.init(hex:))
            if treeIDs.contains(where: { damagedBlobs.contains($0) || !index.contains($0) }) {
                report.affected[id.hex] = ["(the whole snapshot: its file list is damaged)"]
                continue
            }
            let nodes: [TreeNode]
            do {
                nodes = try repo.loadTree(manifest, index: index)
            } catch {
                report.problems.append("snapshot \(id.short): cannot read its file list: \(error)")
                continue
            }
            var paths: [String] = []
            for n in nodes where n.kind == .file {
                if n.chunks.contains(where: { damagedBlobs.contains($0) }) {
                    paths.append(n.path)
                } else if let missing = n.chunks.first(where: { !index.contains($0) }) {
                    report.problems.append("snapshot \(id.short): \(n.path) needs chunk \(missing.short), which no index lists")
                    paths.append(n.path)
                }
            }
            if !paths.isEmpty { report.affected[id.hex] = paths }
        }
        for (k, v) in damaged { report.damagedPacks[k.hex] = v }
        return report
    }

    /// Reads one pack in bounded windows: trailer and header first, then the blobs in order,
    /// hashing everything so the pack's name (its SHA-256) is checked too.
    private static func verify(pack: ObjectID, size: Int, blobs: [(ObjectID, BlobLocation)], store: any Store,
                               layout: RepositoryLayout, keys: TenantKeys, hmac: HMACSHA256, opener: BlobOpener,
                               plain: inout [UInt8], counters: Locked<(packs: Int, bytes: UInt64)>) -> String? {
        let key = layout.pack(pack)
        do {
            let trailer = try store.get(key, range: (size - PackFormat.trailerSize)..<size)
            let headerLength = try PackFormat.headerLength(trailer: trailer, packSize: size, name: pack.short)
            let headerStart = size - PackFormat.trailerSize - headerLength
            let sealedHeader = try store.get(key, range: headerStart..<(size - PackFormat.trailerSize))
            let header = try PackFormat.openHeader(sealedHeader, keys: keys, name: pack.short).sorted { $0.offset < $1.offset }
            let inHeader = Dictionary(header.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for (id, loc) in blobs {
                guard let e = inHeader[id], e.offset == loc.offset, e.length == loc.length else {
                    return "header does not list blob \(id.short) where the index says"
                }
            }
            // Blobs must tile the pack from 0 to the header, so hashing the windows and the
            // header covers every byte.
            var expected = 0
            for e in header {
                guard Int(e.offset) == expected else { return "blobs do not tile the pack (gap at \(expected))" }
                expected += Int(e.length)
            }
            guard expected == headerStart else { return "blobs do not reach the header" }
            let hasher = SHA256Hasher()
            var read = trailer.count + sealedHeader.count
            for window in PackFormat.readWindows(header.map { Int($0.offset)..<Int($0.offset + $0.length) },
                                                 maxBytes: PackFormat.readWindowBytes) {
                let bytes = try store.get(key, range: window.range)
                read += bytes.count
                hasher.update(bytes)
                for e in header[window.members] {
                    let loc = BlobLocation(pack: pack, offset: e.offset, length: e.length, rawLength: e.rawLength,
                                           type: e.type, compression: e.compression)
                    try bytes.withUnsafeBytes { all in
                        let s = Int(e.offset) - window.range.lowerBound
                        try opener.open(UnsafeRawBufferPointer(rebasing: all[s..<s + Int(e.length)]), id: e.id, location: loc, into: &plain)
                    }
                    let actual = plain.withUnsafeBytes { hmac.mac($0) }
                    guard actual == e.id else { return "blob \(e.id.short) does not hash to its id" }
                }
            }
            hasher.update(sealedHeader)
            hasher.update(trailer)
            counters.withLock {
                $0.packs += 1
                $0.bytes += UInt64(read)
            }
            guard hasher.finalize() == pack else { return "content does not match its name (SHA-256): damaged" }
        } catch {
            return "\(error)"
        }
        return nil
    }
}
