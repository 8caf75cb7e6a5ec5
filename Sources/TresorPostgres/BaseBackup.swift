import Foundation
import TresorCore
import TresorRepository

/// Takes a base backup over the replication protocol and stores it as a `pg-base` snapshot.
///
/// `BASE_BACKUP` (fast checkpoint, no WAL, a backup manifest with SHA-256 file checksums stored as `backup_manifest`, not waiting for the archive: the server
/// would wait forever when archive_command fails, so Tresor waits itself, bounded by the policy's
/// `archive_wait`) streams a tar archive in one COPY OUT. The tar is read as it arrives, by a
/// thread of its own (``BaseBackupReceiver``: it also hashes every page of the relation files),
/// while the backup's thread stores what it hands over: each
/// file's content is cut into chunks, identified with the tenant's chunk-id key and handed to the
/// ``BlobWriter``, exactly like document content, so unchanged data dedups against earlier base
/// backups. Relation files (under `base/` and `global/`) are stored by page (``PagedStream``):
/// each 8 KiB page's digest is compared with the same page of the file in the tenant's last base
/// backup of the same cluster, unchanged pages refer to the chunk that already holds them, and
/// changed ones are gathered into new chunks of up to the policy's `relation_chunk_bytes`. Every
/// backup's tree still names all the chunks it needs, so each restores and checks on its own.
/// Other files go through FastCDC. The file list becomes a tree (``TreeCodec``) under the root
/// label `pgdata`; the manifest records start and end LSN, timeline and times.
///
/// Before the snapshot is stored, every WAL segment from the start to the end LSN is checked to
/// be in the tenant's WAL archive: a base backup without that WAL cannot be restored.
public final class BaseBackup {
    /// Settings from the policy.
    public struct Settings: Sendable {
        /// Fixed chunk size for relation files (a multiple of 8 KiB).
        public var relationChunkBytes: Int
        /// How long to wait for the backup's WAL to reach the archive.
        public var archiveWaitSeconds: Double
        /// zstd level for relation chunks that start with an index page (nil: the policy's
        /// level, as every other chunk).
        public var indexCompressionLevel: Int?
        /// zstd level for the other relation chunks (heap, TOAST, free-space and visibility maps;
        /// nil: the policy's level).
        public var heapCompressionLevel: Int?
        /// The most bytes a changed page's difference from its base page may take to be stored
        /// as that difference (0: changed pages are stored whole).
        public var pageDeltaMaxBytes: Int
        public init(
            relationChunkBytes: Int, archiveWaitSeconds: Double, indexCompressionLevel: Int? = nil, heapCompressionLevel: Int? = nil,
            pageDeltaMaxBytes: Int = 0
        ) {
            self.pageDeltaMaxBytes = pageDeltaMaxBytes
            self.relationChunkBytes = relationChunkBytes
            self.archiveWaitSeconds = archiveWaitSeconds
            self.indexCompressionLevel = indexCompressionLevel
            self.heapCompressionLevel = heapCompressionLevel
        }
    }

    private let repo: TenantRepository
    private let writer: BlobWriter
    private let policy: Policy.Backup
    private let settings: Settings
    private let clock: any Clock
    private let chunker: ChunkStream
    private let pages: PagedStream
    private let bases: BaseChunkCache
    /// Pages of relation files found unchanged since the previous base backup (not stored again),
    /// and pages stored; set by ``run(dsn:archive:)``.
    public private(set) var pagesReused = 0
    public private(set) var pagesStored = 0
    /// Changed pages stored as their difference from their base page, and those differences'
    /// bytes before compression.
    public private(set) var pagesDelta = 0
    public private(set) var deltaBytes = 0
    /// Base chunks of the previous backup that could not be read (their pages were stored whole).
    public var unreadableBases: [String] { bases.failures }
    /// Called as the server's stream is read: bytes read so far and files finished. On the
    /// backup's own thread.
    public var progress: ((_ bytes: UInt64, _ files: Int) -> Void)?

    /// Starts the pipeline's writer threads; `index` is the tenant's loaded index (for dedup).
    public init(repository: TenantRepository, index: RepositoryIndex, policy: Policy.Backup, settings: Settings, clock: any Clock) throws {
        try repository.validateFixedChunkSize(settings.relationChunkBytes, policyKey: "postgres.relation_chunk_bytes")
        repo = repository
        self.policy = policy
        self.settings = settings
        self.clock = clock
        writer = try BlobWriter(
            repository: repository, index: index,
            settings: .init(policy: policy, uploaders: repository.store.capabilities.writeConcurrency))
        chunker = ChunkStream(repository: repository, writer: writer, maxChunk: policy.chunkMax)
        bases = try BaseChunkCache(repository: repository, index: index)
        pages = try PagedStream(
            repository: repository, writer: writer, groupBytes: settings.relationChunkBytes, bases: bases,
            maxDeltaBytes: settings.pageDeltaMaxBytes)
        self.index = index
    }

    private let index: RepositoryIndex

    /// The relation files of the tenant's latest base backup of cluster `systemID`, by tree path,
    /// as the page maps new pages are compared with. Empty when there is none, or when it was
    /// taken before base backups were stored by page.
    private func previousPages(systemID: String) throws -> [[UInt8]: PagedPrevious] {
        let latest = try repo.snapshots()
            .filter { $0.manifest.kind == .postgresBase && $0.manifest.postgres?.systemID == systemID }
            .max { (try $0.manifest.checkedDate(), $0.id) < (try $1.manifest.checkedDate(), $1.id) }
        guard let latest else { return [:] }
        let nodes: [TreeNode]
        do {
            nodes = try repo.loadTree(latest.manifest, index: index)
        } catch  where RepositoryError.isDamage(error) {
            // Nothing is lost: without a previous version every page is stored (as in a first
            // backup). `check` reports the damaged backup; refusing new ones would not repair it.
            return [:]
        }
        var map: [[UInt8]: PagedPrevious] = [:]
        for node in nodes {
            if let p = PagedPrevious(node: node, index: index) { map[node.pathBytes] = p }
        }
        return map
    }

    /// Runs the backup against `dsn` and stores the snapshot once `archive` holds its WAL.
    public func run(dsn: String, archive: WALArchive) throws -> (id: ObjectID, manifest: SnapshotManifest) {
        do {
            return try runUnchecked(dsn: dsn, archive: archive)
        } catch {
            _ = try? writer.finish()
            throw error
        }
    }

    private func runUnchecked(dsn: String, archive: WALArchive) throws -> (id: ObjectID, manifest: SnapshotManifest) {
        let conn = try PGConnection(dsn: dsn, mode: .replicationDatabase)
        let ident = try conn.query("IDENTIFY_SYSTEM")
        guard let row = ident.first, row.count >= 2, let systemID = row[0] else {
            throw PostgresError(.server, "identify_system returned nothing")
        }
        let previous = try previousPages(systemID: systemID)
        var paged = false
        let started = clock.now()
        // The server's backup manifest, with a SHA-256 of every file (issue 11 asks for SHA-256:
        // pg_verifybackup then proves the restored files are the server's, not only free of
        // accidental damage; the cheaper CRC-32C was measured in pgperf and not kept), is stored
        // as pgdata/backup_manifest, so a restore carries it and `pg_verifybackup` can check
        // the restored files against it.
        try conn.send("BASE_BACKUP (LABEL 'tresor', CHECKPOINT 'fast', MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256', WAIT false)")
        var inManifest = false
        var results: [[[String?]]] = []
        var nodes: [TreeNode] = [
            TreeNode(
                path: "pgdata", kind: .directory, mode: 0o700, mtimeSeconds: 0, mtimeNanoseconds: 0,
                uid: 0, gid: 0, size: 0, device: 0, inode: 0)
        ]
        var stats = SnapshotManifest.Stats()
        stats.directories = 1
        var tarFinished = false
        var archives = 0
        let relationCompression = Self.relationCompression(index: settings.indexCompressionLevel, heap: settings.heapCompressionLevel)
        loop: while true {
            switch try conn.next() {
            case .done: break loop
            case .rows(let r): if !r.isEmpty { results.append(r) }  // copy end and command completion carry no rows
            case .copyOut:
                let stream = BaseBackupReceiver(connection: conn, pageIDs: PageGroupID(keys: repo.keys))
                defer { stream.stop() }
                while let batch = stream.next() {
                    defer { stream.recycle(batch) }
                    for event in batch.events {
                        switch event {
                        case .archive(let name):
                            archives += 1
                            guard archives == 1, name == "base.tar" else {
                                throw PostgresError(
                                    .usage, "the cluster has tablespaces outside its data directory ('\(name)'); tresor backs up only the default tablespace")
                            }
                        case .manifestBegin:
                            inManifest = true
                            chunker.begin()
                        case .manifestData(let body):
                            try chunker.append(body)
                            stats.bytesRead += UInt64(body.count)
                        case .begin(let e):
                            paged = e.paged
                            if paged {
                                pages.begin(previous: previous[Array(("pgdata/" + e.entry.path).utf8)], compression: relationCompression)
                            } else {
                                chunker.begin()
                            }
                        case .data(let bytes, let macStart, let macCount):
                            if paged {
                                try batch.macs.withUnsafeBufferPointer {
                                    try pages.append(bytes, macs: UnsafeBufferPointer(rebasing: $0[macStart..<macStart + macCount]))
                                }
                            } else {
                                try chunker.append(bytes)
                            }
                            stats.bytesRead += UInt64(bytes.count)
                            progress?(stats.bytesRead, stats.files)
                        case .end(let entry, let lastMAC):
                            let e = entry.entry
                            var n = TreeNode(
                                path: "pgdata/" + e.path, kind: .file, mode: e.mode, mtimeSeconds: e.mtime, mtimeNanoseconds: 0,
                                uid: e.uid, gid: e.gid, size: e.size, device: 0, inode: 0)
                            switch e.kind {
                            case .file where paged:
                                let (chunks, slices, digests, deltas) = try pages.finish(lastMAC: lastMAC >= 0 ? batch.macs[lastMAC] : nil)
                                n.chunks = chunks
                                n.slices = slices
                                n.pageDigests = digests
                                n.flags.insert(.paged)
                                if !deltas.isEmpty {
                                    n.pageDeltas = deltas
                                    n.flags.insert(.pageDeltas)
                                }
                                pagesReused += pages.reusedPages
                                pagesStored += pages.storedPages
                                pagesDelta += pages.deltaPages
                                deltaBytes += pages.deltaBytes
                                stats.files += 1
                                stats.filesRead += 1
                                stats.bytes += e.size
                            case .file:
                                n.chunks = try chunker.finish()
                                stats.files += 1
                                stats.filesRead += 1
                                stats.bytes += e.size
                            case .directory:
                                n.kind = .directory
                                stats.directories += 1
                            case .symlink(let target):
                                n.kind = .symlink
                                n.linkTargetBytes = Array(target.utf8)
                                stats.symlinks += 1
                            }
                            guard !e.path.isEmpty, e.path != "." else { continue }
                            nodes.append(n)
                        }
                    }
                }
                try stream.finish()
                tarFinished = stream.tarFinished
            }
        }
        guard results.count >= 3, let start = results[0].first, start.count >= 2,
            let startText = start[0], let startLSN = LSN.parse(startText), let startTLI = start[1].flatMap({ UInt32($0) }),
            let end = results.last?.first, end.count >= 2, let endText = end[0], let endLSN = LSN.parse(endText),
            let endTLI = end[1].flatMap({ UInt32($0) })
        else {
            throw PostgresError(.server, "base_backup did not report its start and end positions")
        }
        guard tarFinished || archives == 1 else { throw PostgresError(.server, "base backup stream ended early") }
        guard inManifest else { throw PostgresError(.server, "the server sent no backup manifest") }
        let manifestChunks = try chunker.finish()
        let manifestBytes = chunker.byteCount  // all of the manifest once finished
        var manifestNode = TreeNode(
            path: "pgdata/backup_manifest", kind: .file, mode: 0o600, mtimeSeconds: Int64(started.timeIntervalSince1970),
            mtimeNanoseconds: 0, uid: 0, gid: 0, size: manifestBytes, device: 0, inode: 0)
        manifestNode.chunks = manifestChunks
        stats.files += 1
        stats.filesRead += 1
        stats.bytes += manifestBytes
        if let root = nodes.first(where: { $0.pathBytes == Array("pgdata/global".utf8) }) {
            nodes[0].uid = root.uid
            nodes[0].gid = root.gid
            nodes[0].mtimeSeconds = root.mtimeSeconds
        }
        manifestNode.uid = nodes[0].uid
        manifestNode.gid = nodes[0].gid
        nodes.append(manifestNode)
        let startWAL = WALName.segment(containing: startLSN, timeline: startTLI)
        // The end LSN points just past the backup's last record, so the segment holding endLSN - 1
        // is the last one needed.
        let endWAL = WALName.segment(containing: max(startLSN, endLSN &- 1), timeline: endTLI)

        // Packs and index first, while archive_command is still storing the last segment: the
        // snapshot, stored only once the WAL is there, is what makes them a backup.
        // Directories before their contents, in name order, as the tree codec expects.
        nodes.sort { $0.pathBytes.lexicographicallyPrecedes($1.pathBytes) }
        let treeIDs = try chunker.storeTree(TreeCodec.encode(nodes))
        let written = try writer.finish()
        stats.newBlobs = written.newBlobs
        stats.newBytesStored = written.packBytes
        try waitForWAL(from: startWAL, to: endWAL, archive: archive)
        let ended = clock.now()
        var manifest = SnapshotManifest(
            tenant: repo.tenant.rawValue, kind: .postgresBase, time: TimeFormat.string(started, fractional: true),
            hostname: ProcessInfo.processInfo.hostName, roots: [.init(path: redactDSN(dsn), label: "pgdata")],
            parent: nil, tree: treeIDs, stats: stats)
        manifest.postgres = PostgresBackupInfo(
            startLSN: LSN.format(startLSN), endLSN: LSN.format(endLSN), timeline: startTLI, endTimeline: endTLI, systemID: systemID,
            startTime: TimeFormat.string(started, fractional: true), endTime: TimeFormat.string(ended, fractional: true),
            startWAL: startWAL.description, endWAL: endWAL.description)
        let id = try repo.saveSnapshot(manifest, level: policy.compressionLevel)
        return (id, manifest)
    }

    /// Files whose content is 8 KiB pages: relation segments, their free-space and visibility
    /// maps, under `base/<db>/` and `global/`.
    static func isRelationFile(_ path: String) -> Bool {
        let parts = path.split(separator: "/")
        let name = parts.last ?? ""
        guard let first = name.first, first.isNumber else { return false }
        return (parts.count == 3 && parts[0] == "base") || (parts.count == 2 && parts[0] == "global")
    }

    /// The zstd setting of a new chunk of relation pages: `index` (tuned for index tuples) when it
    /// starts with an index page, else `heap`; nil (the policy's level) for a level not given.
    /// Nil when neither is given.
    static func relationCompression(index: Int?, heap: Int?) -> ((UnsafeRawBufferPointer) -> ZstdSetting?)? {
        guard index != nil || heap != nil else { return nil }
        let indexSetting = index.map { ZstdSetting(level: $0, indexPages: true) }
        let heapSetting = heap.map { ZstdSetting(level: $0) }
        return { startsWithIndexPage($0) ? indexSetting : heapSetting }
    }

    /// Whether `chunk` starts with a PostgreSQL page that has a special space, as index pages
    /// (B-tree, hash, GiST, GIN, SP-GiST, BRIN) do and heap, free-space-map and visibility-map
    /// pages do not: the page header (24 bytes) records the 8 KiB page size and layout version 4,
    /// and its `pd_special` offset (bytes 16-17, little-endian on the platforms PostgreSQL and
    /// Tresor run on here) is below the page size. Index pages compress far better at higher
    /// zstd levels than at 3 (B-tree leaves of pgbench_accounts_pkey in 128 KiB chunks: 23%
    /// smaller at level 6 with ``ZstdSetting/indexPages``), heap pages do not.
    static func startsWithIndexPage(_ chunk: UnsafeRawBufferPointer) -> Bool {
        guard chunk.count >= 8192 else { return false }
        let special = UInt16(littleEndian: chunk.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
        let sizeVersion = UInt16(littleEndian: chunk.loadUnaligned(fromByteOffset: 18, as: UInt16.self))
        return sizeVersion == 8192 | 4 && special >= 24 && special < 8192
    }

    /// The server does not wait for archiving (WAIT false), and archive_command might point
    /// elsewhere: check the tenant's own archive, polling until `archive_wait` runs out. The
    /// server switches to a new segment at the end of the backup, so archive_command is usually
    /// storing the last one as the backup ends; polls start at ``firstPollDelay`` and back off,
    /// so a quick archiver costs little waiting and a slow one (or a remote store) few lists.
    private func waitForWAL(from: WALName, to: WALName, archive: WALArchive) throws {
        let deadline = Date().addingTimeInterval(settings.archiveWaitSeconds)
        var delay = Self.firstPollDelay
        while true {
            let missing = Self.missingSegments(from: from, to: to, archived: Set(try archive.list().map(\.name)))
            if missing.isEmpty { return }
            if Date() >= deadline {
                throw PostgresError(
                    .failed,
                    "wal \(missing.map(\.description).joined(separator: ", ")) needed by the base backup is not in the archive of tenant '\(repo.tenant)'",
                    hint: "set archive_command as tresor pg setup \(repo.tenant) prints, then take the base backup again")
            }
            Thread.sleep(forTimeInterval: min(delay, max(0, deadline.timeIntervalSinceNow)))
            delay = Self.nextPollDelay(after: delay)
        }
    }

    /// The first wait between archive polls, in seconds.
    static let firstPollDelay = 0.02
    /// The longest wait between archive polls, in seconds.
    static let maxPollDelay = 0.5

    /// The wait after one of `delay` seconds: half as long again, at most ``maxPollDelay``.
    static func nextPollDelay(after delay: Double) -> Double {
        min(delay * 1.5, maxPollDelay)
    }

    /// The segments from `from` to `to` (inclusive) that `archived` lacks; a segment counts as
    /// archived on either the start or the end timeline (the backup may span a switch).
    static func missingSegments(from: WALName, to: WALName, archived: Set<WALName>) -> [WALName] {
        var missing: [WALName] = []
        var s = from.segment
        while s <= to.segment {
            let seg = WALName(timeline: from.timeline, segment: s)
            if !archived.contains(seg) && !archived.contains(WALName(timeline: to.timeline, segment: s)) { missing.append(seg) }
            s += 1
        }
        return missing
    }
}
