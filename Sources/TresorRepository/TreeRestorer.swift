internal import CPosix
import Foundation
import TresorCore
import TresorStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Restores the nodes of a snapshot tree (all of it, or a subtree) into an empty directory.
///
/// Algorithm: (1) a first walk over the tree checks that every path stays inside the target
/// (relative, no empty, `.` or `..` segments) and notes hard links; (2) a second walk creates
/// directories as it meets them and gathers files, symlinks and special files into batches
/// (``batchFiles``, ``batchBytes``), so only a batch of nodes is held however large the tree;
/// (3) per batch, the blobs are grouped by the pack that holds them, packs in the order the
/// files first use them, and writer threads take one pack at a time from a queue that spans
/// batches (the next batch is planned and queued while the last packs of the one before are
/// still being written, so no thread waits at a batch's end; at most two batches are being
/// written at a time, so memory stays bounded), read the byte range
/// covering the needed blobs in one request, open each blob and write it at every offset where
/// it occurs, in whichever files, each under a temporary name (`.tresor-partial-N`, `O_EXCL`; a
/// file spread over several packs is made beforehand at its final size, so holes stay holes;
/// a large file's consecutive bytes are gathered into aligned blocks and written with `O_DIRECT`,
/// past the page cache, see ``DirectStage`` and ``directWriteMinBytes``);
/// the thread that writes a file's last byte gives it its owner (as root), mode, extended
/// attributes and times through that same descriptor; (4) once every write of the batch has
/// returned, the file system is synced (`syncfs`), so all content is on disk before any file of
/// the batch has its name; (5) each
/// complete file is renamed to its name (`RENAME_NOREPLACE`: never replacing anything); a file
/// that could not be restored completely is removed, so no zero-filled file with a plausible name
/// is ever left; the batch's symlinks, FIFOs and device nodes are created. Steps (4) and (5)
/// of a batch run on a thread of their own while the next batch is written (3), so the disk's
/// write-back overlaps the decrypting and writing; batches are named one at a time, in order;
/// (6) hard links are made, then directories get their metadata deepest first; (7) the file system is synced again,
/// so "restore finished" means "on disk". `sync: false` skips the syncs.
///
/// Safety in a target that others can write to (the `postgres` user's data directory, restored
/// by root): every path is resolved from a descriptor of the target, one component at a time,
/// with `O_NOFOLLOW | O_DIRECTORY`, and every change of owner, mode or times goes through a
/// descriptor of the object itself, so a symlink planted during the restore is never followed:
/// what would go through it fails and is reported.
///
/// Nothing is dropped quietly: a file that fails is in ``Report/failed``; a file restored without
/// part of its metadata, or a special file that cannot be restored here (a device node without
/// root, a socket), is in ``Report/incomplete``.
public final class TreeRestorer {
    /// What a restore did.
    public struct Report: Sendable, Codable {
        public var files = 0
        public var directories = 0
        public var symlinks = 0
        /// FIFOs and device nodes created.
        public var specialFiles = 0
        /// Files restored as further names of a file restored before (counted in `files` too).
        public var hardLinks = 0
        public var bytes: UInt64 = 0
        /// Paths that could not be restored, with the reason; nothing is left under their names.
        public var failed: [String: String] = [:]
        /// Paths restored without some of what the snapshot holds (owner, mode, attributes, times),
        /// or special files not restored here, with the reason.
        public var incomplete: [String: String] = [:]
        public init() {}
    }

    /// Phases a test can act in (to plant a symlink while a restore runs).
    public enum Phase: Sendable {
        /// The directories met before the first batch exist; no content is written yet.
        case created
    }

    /// Where a blob's bytes go: `length` bytes from `from` of its plaintext (all of it when
    /// `length` is nil) at `offset` of file `file`.
    private struct Placement {
        var file: Int
        var offset: UInt64
        var from: UInt32 = 0
        var length: UInt32? = nil
        /// `length` bytes from `from` are a page delta's runs, written over the page at `offset`
        /// (already written: deltas are placed in a second pass, after every slice).
        var delta = false
    }

    private let repo: TenantRepository
    private let index: RepositoryIndex
    private let threads: Int
    private let sync: Bool
    private let progress: (@Sendable (_ bytesWritten: UInt64, _ totalBytes: UInt64) -> Void)?
    /// Called at each ``Phase``, for tests.
    public var phaseHook: (@Sendable (Phase) -> Void)?
    /// Flushes the file system holding the descriptor to disk (`syncfs`): 0, or -1 with `errno`
    /// set. Tests replace it to see when each flush happens or to make one fail.
    public var syncFileSystem: @Sendable (_ fd: Int32) -> Int32 = { syncfs($0) }

    /// `sync: false` skips the two `syncfs` calls (faster; "restore finished" then means "in the
    /// page cache", and a crash may leave named files whose content was not yet written back).
    /// `progress`, when given, is called about once a second from a restore thread.
    public init(
        repository: TenantRepository, index: RepositoryIndex, threads: Int = 2 * availableCores, sync: Bool = true,
        progress: (@Sendable (_ bytesWritten: UInt64, _ totalBytes: UInt64) -> Void)? = nil
    ) {
        self.repo = repository
        self.index = index
        self.threads = threads
        self.sync = sync
        self.progress = progress
    }

    /// Selects the nodes at `subpath` (the node itself and everything under it).
    public static func select(_ nodes: [TreeNode], subpath: String?) -> [TreeNode] {
        guard let raw = subpath else { return nodes }
        let sub = Array(raw.split(separator: "/").joined(separator: "/").utf8)
        if sub.isEmpty { return nodes }
        return nodes.filter { $0.pathBytes == sub || ($0.pathBytes.count > sub.count && $0.pathBytes.starts(with: sub) && $0.pathBytes[sub.count] == 0x2F) }
    }

    /// True when `path` is a plain relative path that cannot leave the directory it is joined to.
    public static func isContained(_ path: [UInt8]) -> Bool {
        guard !path.isEmpty, path.first != 0x2F else { return false }
        return path.split(separator: 0x2F, omittingEmptySubsequences: false).allSatisfy { seg in
            !seg.isEmpty && !seg.elementsEqual([0x2E]) && !seg.elementsEqual([0x2E, 0x2E]) && !seg.contains(0)
        }
    }

    public static func isContained(_ path: String) -> Bool { isContained(Array(path.utf8)) }

    // MARK: - Restore

    /// Files and content bytes restored per batch: the tree is read and restored a batch at a
    /// time, so memory stays bounded whatever the file count.
    public var batchFiles = 8192
    public var batchBytes: UInt64 = 256 << 20

    /// Files at least this large (not page-sliced database files) have their content written
    /// with `O_DIRECT` a ``directWriteBytes`` buffer at a time (see ``DirectStage``): the page
    /// cache copy, its page allocation and the kernel's later write-back are most of a restore's
    /// system time, and these files hold most of the bytes. 0 turns it off. Only for a synced
    /// restore: one with `sync: false` (a drill's scratch copy) is read back right away
    /// (`pg_verifybackup`, the scratch server), which the page cache serves and the disk would not.
    public var directWriteMinBytes: UInt64 = 1 << 20
    /// Bytes per direct write (a multiple of 4096); one such buffer per restore thread.
    public var directWriteBytes = 2 << 20
    private let directShared = DirectStage.Shared()
    /// Content bytes written with `O_DIRECT` so far (the rest went through the page cache).
    public var directBytesWritten: UInt64 { directShared.directBytes.current }

    public func restore(nodes selected: [TreeNode], to target: String) throws -> Report {
        try restore(
            passes: {
                var i = 0
                return {
                    guard i < selected.count else { return nil }
                    i += 1
                    return selected[i - 1]
                }
            }, to: target)
    }

    /// Restores the nodes that `passes` yields, in tree order (a directory before what is in it).
    /// Each call of `passes` starts a new walk over the same nodes (a ``TreeNodeStream`` each):
    /// the first checks every path and notes hard links before anything is created, the second
    /// restores a batch (``batchFiles``, ``batchBytes``) at a time, so no more than a batch of
    /// nodes is held, however large the tree.
    public func restore(passes: () throws -> () throws -> TreeNode?, to target: String) throws -> Report {
        var report = Report()
        // Pass 1: refuse before anything is created; hard links (a later name of a (device,
        // inode) seen before) map their file number to the first name's.
        var linkOf: [Int: Int] = [:]
        var total: UInt64 = 0
        do {
            var firstOf: [FileKey: Int] = [:]
            let walk = try passes()
            var number = 0
            while let n = try walk() {
                guard Self.isContained(n.pathBytes) else {
                    throw RepositoryError(.corrupt, "snapshot path '\(n.displayPath)' would escape the target directory; refusing to restore it")
                }
                guard n.kind == .file else { continue }
                defer { number += 1 }
                if n.inode != 0 {
                    let key = FileKey(device: n.device, inode: n.inode)
                    if let first = firstOf[key] {
                        linkOf[number] = first
                        continue
                    }
                    firstOf[key] = number
                }
                total += n.size
            }
        }
        let firstNames = Set(linkOf.values)

        let rootFD = try prepareTarget(target)
        defer { close(rootFD) }
        let isRoot = geteuid() == 0
        let handles = DirectoryHandles(root: rootFD)
        defer { handles.closeAll() }
        var dirs: [TreeNode] = []
        var links: [(node: TreeNode, first: Int)] = []
        var namesOfFirsts: [Int: [UInt8]] = [:]
        var failedFirsts: [Int: String] = [:]
        var batch = Batch()
        let written = Locked((bytes: UInt64(0), reported: Date()))
        var hookCalled = false

        // The batch written before: synced and named on a thread of its own while the next
        // batch is written, so the disk's write-back overlaps the reading, decrypting and writing.
        var pending: PendingFinish?
        // On a restore that is already throwing: no thread outlives it; that batch's own outcome
        // adds nothing, since the restore fails with the error it throws either way.
        defer { pending?.waitQuietly() }
        // The writer threads, one set for the whole restore, fed packs across batch boundaries.
        // Declared after `pending`, so on a throw they stop (dropping what is queued) first.
        let writers = Writers(restorer: self, rootFD: rootFD, chown: isRoot, total: total, written: written)
        defer { writers.stop() }
        // The batch whose packs are being written while the walk gathers the next one.
        var inFlight: BatchWork?
        /// Waits for the batch written before to be synced and named and takes in what it did;
        /// throws when its sync failed (its files then keep their temporary names).
        func awaitPending() throws {
            guard let p = pending else { return }
            pending = nil
            let named = try p.wait()
            for (i, reason) in named.failed { report.failed[named.files[i].node.displayPath] = reason }
            for (i, s) in named.states.enumerated() where named.failed[i] == nil {
                if let inc = s.incomplete { report.incomplete[named.files[i].node.displayPath] = inc }
            }
            report.files += named.files.count - named.failed.count
            for (i, f) in named.files.enumerated() where firstNames.contains(f.number) {
                if let why = named.failed[i] { failedFirsts[f.number] = why }
            }
        }
        /// Waits until every write of `work` has returned, then has it synced and named beside
        /// what follows, once the batch before it is (one batch named at a time, in order).
        func handOver(_ work: BatchWork) throws {
            work.waitWritten()
            try awaitPending()
            let (flushFS, threads) = (sync ? syncFileSystem : nil, self.threads)
            pending = PendingFinish {
                try Self.finishBatch(work, rootFD: rootFD, target: target, flush: flushFS, threads: threads)
            }
        }

        func flush() throws {
            guard !batch.files.isEmpty || !batch.others.isEmpty else { return }
            if !hookCalled {
                phaseHook?(.created)
                hookCalled = true
            }
            // From here on every path is resolved afresh, so a directory swapped meanwhile is noticed.
            handles.closeAll()
            let work = prepareBatch(batch.files, rootFD: rootFD, chown: isRoot)
            if let work { writers.submit(work) }
            // The batch before finishes its last packs while this one's are taken up.
            if let before = inFlight {
                inFlight = nil
                try handOver(before)
            }
            inFlight = work
            handles.closeAll()
            for n in batch.others { restoreOther(n, handles: handles, chown: isRoot, report: &report) }
            batch = Batch()
        }

        // Pass 2: directories as they come; files and the rest a batch at a time.
        let walk = try passes()
        var number = 0
        while let n = try walk() {
            switch n.kind {
            case .directory:
                let w = Where(n.pathBytes)
                let parent = try handles.fd(w.parent, create: true).get(or: "cannot create the parents of \(n.displayPath)")
                let rc = PosixFS.withCName(w.name) { mkdirat(parent, $0, 0o700) }
                if rc != 0 && errno != EEXIST {
                    throw RepositoryError(.failed, "cannot create \(target)/\(n.displayPath): \(PosixFS.errorText())")
                }
                report.directories += 1
                dirs.append(n)
            case .file:
                defer { number += 1 }
                if firstNames.contains(number) { namesOfFirsts[number] = n.pathBytes }
                if let first = linkOf[number] {
                    links.append((n, first))
                    continue
                }
                // The parents of a selected subtree may not be in the walk. A failure here is
                // reported with the file, when it cannot be created in that directory.
                _ = handles.fd(Where(n.pathBytes).parent, create: true)
                batch.files.append(BatchFile(node: n, number: number))
                batch.bytes += n.size
                report.bytes += n.size
                if batch.files.count >= batchFiles || batch.bytes >= batchBytes { try flush() }
            default:
                batch.others.append(n)
                if batch.others.count >= batchFiles { try flush() }
            }
        }
        try flush()
        if let last = inFlight {
            inFlight = nil
            try handOver(last)
        }
        try awaitPending()
        writers.stop()

        for (n, first) in links {
            let w = Where(n.pathBytes)
            guard let firstPath = namesOfFirsts[first] else {
                report.failed[n.displayPath] = "hard link whose first name was not in the walk"
                continue
            }
            if let why = failedFirsts[first] {
                report.failed[n.displayPath] = "hard link to \(TreeNode.display(firstPath)), which was not restored: \(why)"
                continue
            }
            let from = Where(firstPath)
            let linked = handles.fd(from.parent, create: false).flatMap { fromFD in
                handles.fd(w.parent, create: true, evict: false).flatMap { to -> Result<Void, Errno> in
                    let rc = PosixFS.withCName(from.name) { a in PosixFS.withCName(w.name) { b in linkat(fromFD, a, to, b, 0) } }
                    return rc == 0 ? .success(()) : .failure(Errno(errno))
                }
            }
            switch linked {
            case .success:
                report.files += 1
                report.hardLinks += 1
            case .failure(let e): report.failed[n.displayPath] = "cannot link to \(TreeNode.display(firstPath)): \(e)"
            }
        }

        // Directories deepest first, so a directory's mode never blocks work inside it.
        dirs.sort { $0.pathBytes.count > $1.pathBytes.count }
        for n in dirs {
            let opened = handles.fd(n.pathBytes, create: false)
            guard case .success(let fd) = opened else {
                if case .failure(let e) = opened { report.incomplete[n.displayPath] = "cannot open to set owner, mode and times: \(e)" }
                continue
            }
            if let why = Self.applyMetadata(n, fd: fd, chown: isRoot) { report.incomplete[n.displayPath] = why }
        }
        // Names, links, modes and times durable too.
        if sync && syncFileSystem(rootFD) != 0 {
            throw RepositoryError(.failed, "cannot flush the restore under \(target) to disk: \(PosixFS.errorText())")
        }
        return report
    }

    private struct FileKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private struct BatchFile {
        var node: TreeNode
        /// The file's number in the walk; its temporary name is `.tresor-partial-<number>`.
        var number: Int
    }

    /// A batch of regular files (first names) and of symlinks and special files.
    private struct Batch {
        var files: [BatchFile] = []
        var others: [TreeNode] = []
        var bytes: UInt64 = 0
    }

    /// Which blobs of one pack go where: each blob's location and its placements.
    private typealias PackPlan = [ObjectID: (BlobLocation, [Placement])]

    /// One batch on its way through the writer threads: its content written under temporary
    /// names, pack by pack, then (once every write returned) synced and named.
    private final class BatchWork: @unchecked Sendable {
        let files: [BatchFile]
        let places: [Where]
        let temps: [[UInt8]]
        let failures: Locked<[Int: String]>
        let states: Locked<[FileState]>
        /// Packs in the order the files first use them; page deltas after every other pack.
        let packs: [(ObjectID, PackPlan)]
        private var deltas: [(ObjectID, PackPlan)]
        private let condition = NSCondition()
        /// Packs handed to the writers and not yet done with.
        private var left = 0
        private var written = false

        init(
            files: [BatchFile], places: [Where], temps: [[UInt8]], failures: [Int: String], states: [FileState],
            packs: [(ObjectID, PackPlan)], deltas: [(ObjectID, PackPlan)]
        ) {
            (self.files, self.places, self.temps) = (files, places, temps)
            self.failures = Locked(failures)
            self.states = Locked(states)
            (self.packs, self.deltas) = (packs, deltas)
        }

        /// The packs to hand to the writers first (the page deltas' packs when there is nothing
        /// else); marks the batch written when it has none at all.
        func begin() -> [(ObjectID, PackPlan)] {
            condition.lock()
            defer { condition.unlock() }
            var first = packs
            if first.isEmpty { swap(&first, &deltas) }
            left = first.count
            if left == 0 { written = true }
            return first
        }

        /// One pack done (every write of it returned): the page deltas' packs once every base
        /// page is written, for the caller to hand on; nothing when more are out or all is done.
        func packDone() -> [(ObjectID, PackPlan)] {
            condition.lock()
            defer { condition.unlock() }
            left -= 1
            guard left == 0 else { return [] }
            if !deltas.isEmpty {
                var next: [(ObjectID, PackPlan)] = []
                swap(&next, &deltas)
                left = next.count
                return next
            }
            written = true
            condition.broadcast()
            return []
        }

        /// Waits until every write of the batch has returned.
        func waitWritten() {
            condition.lock()
            while !written { condition.wait() }
            condition.unlock()
        }
    }

    /// A first-in-first-out list of packs to write, shared by the writer threads; unbounded, since
    /// what it holds is already planned (at most two batches' packs are queued at a time).
    private final class PackQueue: @unchecked Sendable {
        typealias Item = (work: BatchWork, pack: ObjectID, blobs: PackPlan)
        private let condition = NSCondition()
        private var items: [Item] = []
        private var head = 0
        private var closed = false

        /// Queues `packs` of batch `work` (nothing once closed).
        func push(_ packs: [(ObjectID, PackPlan)], of work: BatchWork) {
            guard !packs.isEmpty else { return }
            condition.lock()
            defer { condition.unlock() }
            guard !closed else { return }
            items.append(contentsOf: packs.map { (work: work, pack: $0.0, blobs: $0.1) })
            condition.broadcast()
        }

        /// The oldest item, waiting for one; nil once closed.
        func pop() -> Item? {
            condition.lock()
            defer { condition.unlock() }
            while !closed && head == items.count { condition.wait() }
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            if head == items.count {
                // Empty (once a batch at least): what was taken is let go, its batch's plan with it.
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }

        /// Drops what is queued (nothing is restored of it) and ends every `pop`.
        func close() {
            condition.lock()
            closed = true
            items.removeAll()
            head = 0
            condition.broadcast()
            condition.unlock()
        }
    }

    /// What syncing and naming a batch did: why a file (by its index) was not restored, and
    /// each file's state (what of its metadata could not be set).
    private struct NamedBatch: @unchecked Sendable {
        var files: [BatchFile]
        var failed: [Int: String]
        var states: [FileState]
    }

    /// The syncing and naming of one batch on a thread of its own.
    private final class PendingFinish: @unchecked Sendable {
        private let group = ThreadGroup()
        /// Written by the thread before it leaves the group, read after `wait` returns.
        private var outcome: Result<NamedBatch, any Error>?

        init(_ body: @escaping @Sendable () throws -> NamedBatch) {
            group.start(1, name: "restore-sync") { [self] _ in outcome = Result(catching: body) }
        }

        func wait() throws -> NamedBatch {
            group.wait()
            return try outcome!.get()
        }

        /// Waits only, for a restore that is already failing: its error is the one reported, and
        /// the files of this batch keep their temporary names (or their names, when named).
        func waitQuietly() { group.wait() }
    }

    /// What the writing threads know of one file of a batch.
    private struct FileState {
        /// Placements not yet written; the one that writes the last sets the metadata.
        var remaining: Int
        /// All its placements are in one pack, so the thread taking that pack creates it.
        var createdByWriter: Bool
        var created = false
        var needsTruncate: Bool
        var done = false
        var incomplete: String?
    }

    /// Plans one batch for the writers: which blob goes where, pack by pack; creates the files
    /// the writers do not (under their temporary names). Nil for a batch without files.
    private func prepareBatch(_ files: [BatchFile], rootFD: Int32, chown: Bool) -> BatchWork? {
        guard !files.isEmpty else { return nil }
        let places = files.map { Where($0.node.pathBytes) }
        let temps = files.map { Array(".tresor-partial-\($0.number)".utf8) }

        // Which blob goes where, grouped by pack, packs in the order the files first use them.
        var byPack: [ObjectID: [ObjectID: (BlobLocation, [Placement])]] = [:]
        var packOrder: [ObjectID] = []
        // Page deltas, written once every base page is.
        var deltaByPack: [ObjectID: [ObjectID: (BlobLocation, [Placement])]] = [:]
        var deltaOrder: [ObjectID] = []
        var failed = [Int: String]()
        var states: [FileState] = []
        states.reserveCapacity(files.count)
        for (i, f) in files.enumerated() {
            var pieces = 0, end: UInt64 = 0
            var firstPack: ObjectID?, onePack = true
            if let problem = plan(
                f.node, file: i, into: &byPack, order: &packOrder, deltas: &deltaByPack, deltaOrder: &deltaOrder,
                placed: { pack, placement, length in
                    pieces += 1
                    end = max(end, placement.offset + length)
                    if firstPack == nil { firstPack = pack } else if firstPack != pack { onePack = false }
                })
            {
                failed[i] = problem
            }
            states.append(
                FileState(
                    remaining: pieces, createdByWriter: pieces > 0 && onePack && failed[i] == nil,
                    needsTruncate: end < f.node.size))
        }
        // Files the writers do not create: those spread over several packs (created here at their
        // size, so holes stay holes) and those with no content to write.
        let handles = DirectoryHandles(root: rootFD)
        defer { handles.closeAll() }
        for (i, f) in files.enumerated() where failed[i] == nil && !states[i].createdByWriter {
            let created = handles.fd(places[i].parent, create: false).flatMap { parent in
                PosixFS.openAt(parent, temps[i], O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            }
            switch created {
            case .failure(let e): failed[i] = "cannot create: \(e)"
            case .success(let fd):
                states[i].created = true
                if f.node.size > 0 && ftruncate(fd, off_t(f.node.size)) != 0 {
                    failed[i] = "cannot set its size: \(PosixFS.errorText())"
                } else if states[i].remaining == 0 {
                    states[i].incomplete = Self.applyMetadata(f.node, fd: fd, chown: chown)
                    states[i].done = true
                }
                states[i].needsTruncate = false
                close(fd)
            }
        }
        return BatchWork(
            files: files, places: places, temps: temps, failures: failed, states: states,
            packs: packOrder.map { ($0, byPack[$0]!) }, deltas: deltaOrder.map { ($0, deltaByPack[$0]!) })
    }

    /// Syncs the file system, so all of a written batch's content is on disk before any of its
    /// files has its name, then renames each complete file (never replacing anything) and
    /// removes each failed one. Runs while the next batch is written: that batch's bytes may be
    /// synced too, which costs nothing, but only this batch's files are named.
    private static func finishBatch(
        _ w: BatchWork, rootFD: Int32, target: String, flush: (@Sendable (Int32) -> Int32)?, threads: Int
    ) throws -> NamedBatch {
        let (files, places, temps, failures) = (w.files, w.places, w.temps, w.failures)
        // Content durable before any file gets its name: a crash from here on leaves complete
        // files or `.tresor-partial-N` ones, never a named file with missing bytes. One syncfs
        // per batch instead of an fsync per file lets the kernel write back in one sweep.
        if let flush, flush(rootFD) != 0 {
            throw RepositoryError(
                .failed, "cannot flush the restored data to disk under \(target): \(PosixFS.errorText()); the partial files are named .tresor-partial-N")
        }

        // Complete files get their name; failed ones are removed.
        let finalStates = w.states.current
        let next = Locked(0)
        runOnThreads(min(threads, max(1, files.count / 256 + 1)), name: "restore-finish") { _ in
            let handles = DirectoryHandles(root: rootFD)
            defer { handles.closeAll() }
            while true {
                let i = next.withLock { n -> Int in
                    n += 1
                    return n - 1
                }
                guard i < files.count else { return }
                var problem = failures.withLock { $0[i] }
                if problem == nil && !finalStates[i].done {
                    // Not expected: every placement of a file that did not fail is written.
                    problem = "not all of its content was written"
                }
                if let f = Self.name(at: places[i], temp: temps[i], failed: problem, handles: handles) {
                    failures.withLock { $0[i] = f }
                }
            }
        }
        return NamedBatch(files: files, failed: failures.current, states: finalStates)
    }

    /// Places each chunk of file `i` at its offset (holes skipped); a reason when it cannot be.
    /// `placed` hears of each placement (its pack and length).
    private func plan(
        _ n: TreeNode, file i: Int, into byPack: inout [ObjectID: [ObjectID: (BlobLocation, [Placement])]],
        order: inout [ObjectID], deltas deltaByPack: inout [ObjectID: [ObjectID: (BlobLocation, [Placement])]],
        deltaOrder: inout [ObjectID], placed: (ObjectID, Placement, UInt64) -> Void
    ) -> String? {
        func add(_ c: ObjectID, _ loc: BlobLocation, _ p: Placement, length: UInt64) {
            if p.delta {
                if deltaByPack[loc.pack] == nil { deltaOrder.append(loc.pack) }
                deltaByPack[loc.pack, default: [:]][c, default: (loc, [])].1.append(p)
            } else {
                if byPack[loc.pack] == nil { order.append(loc.pack) }
                byPack[loc.pack, default: [:]][c, default: (loc, [])].1.append(p)
            }
            placed(loc.pack, p, length)
        }
        if n.flags.contains(.paged) {
            // Each slice is a stretch of one chunk; a chunk several slices use is opened once.
            var at: UInt64 = 0
            for s in n.slices {
                let c = n.chunks[Int(s.chunk)]
                guard let loc = index.location(of: c) else { return "chunk \(c.short) is missing from the index" }
                guard UInt64(s.offset) + UInt64(s.length) <= UInt64(loc.rawLength) else {
                    return "a slice of chunk \(c.short) reaches past its end"
                }
                add(c, loc, Placement(file: i, offset: at, from: s.offset, length: s.length), length: UInt64(s.length))
                at += UInt64(s.length)
            }
            // Each delta page's runs go over its base page, which the slices above wrote.
            for d in n.pageDeltas {
                let c = n.chunks[Int(d.chunk)]
                guard let loc = index.location(of: c) else { return "chunk \(c.short) is missing from the index" }
                guard UInt64(d.offset) + UInt64(d.length) <= UInt64(loc.rawLength) else {
                    return "a page delta in chunk \(c.short) reaches past its end"
                }
                let page = UInt64(d.page) * UInt64(PagedStream.pageSize)
                add(c, loc, Placement(file: i, offset: page, from: d.offset, length: d.length, delta: true), length: 0)
            }
            return at == n.size ? nil : "the snapshot's slices do not add up to the file's size"
        }
        let extents = n.flags.contains(.sparse) ? n.extents : [TreeNode.Extent(offset: 0, length: n.size)]
        var e = 0, within: UInt64 = 0
        for c in n.chunks {
            guard let loc = index.location(of: c) else { return "chunk \(c.short) is missing from the index" }
            let len = UInt64(loc.rawLength)
            while e < extents.count && within == extents[e].length {
                e += 1
                within = 0
            }
            guard e < extents.count, extents[e].length - within >= len else {
                return "the snapshot's chunks do not fit the file's size and extents"
            }
            add(c, loc, Placement(file: i, offset: extents[e].offset + within), length: len)
            within += len
        }
        while e < extents.count && within == extents[e].length {
            e += 1
            within = 0
        }
        return e < extents.count ? "the snapshot's chunks hold fewer bytes than the file's size" : nil
    }

    /// What the writer threads need of the restore.
    private struct WriterContext: Sendable {
        let keys: TenantKeys
        let store: any Store
        let layout: RepositoryLayout
        let progress: (@Sendable (_ bytesWritten: UInt64, _ totalBytes: UInt64) -> Void)?
        let directMin: UInt64
        let directBytes: Int
        let directShared: DirectStage.Shared
        let rootFD: Int32
        let chown: Bool
        let total: UInt64
        let written: Locked<(bytes: UInt64, reported: Date)>
    }

    /// The writer threads of one restore (``threads`` of them, started with the first batch):
    /// each takes one pack at a time from a queue that spans batches, so the next batch's packs
    /// are taken up while the last packs of the batch before are still being written.
    private final class Writers: @unchecked Sendable {
        private let queue = PackQueue()
        private let group = ThreadGroup()
        private var started = false
        private let context: WriterContext
        private let count: Int

        init(restorer r: TreeRestorer, rootFD: Int32, chown: Bool, total: UInt64, written: Locked<(bytes: UInt64, reported: Date)>) {
            count = r.threads
            context = WriterContext(
                keys: r.repo.keys, store: r.repo.store, layout: r.repo.layout, progress: r.progress,
                directMin: r.sync ? r.directWriteMinBytes : 0, directBytes: r.directWriteBytes, directShared: r.directShared,
                rootFD: rootFD, chown: chown, total: total, written: written)
        }

        /// Hands a batch's packs to the writers.
        func submit(_ work: BatchWork) {
            if !started {
                started = true
                let (context, queue) = (self.context, self.queue)
                group.start(count, name: "restore") { _ in TreeRestorer.writePacks(from: queue, context) }
            }
            queue.push(work.begin(), of: work)
        }

        /// Drops what is still queued and waits for the threads (each ends its pack first).
        func stop() {
            queue.close()
            group.wait()
        }
    }

    /// One writer thread: takes packs until the queue closes, reads the blobs each batch needs of
    /// it, opens them and writes them where they go; tells each pack's batch when it is done.
    private static func writePacks(from queue: PackQueue, _ c: WriterContext) {
        let (keys, store, layout, progress) = (c.keys, c.store, c.layout, c.progress)
        let (directMin, directBytes, directShared) = (c.directMin, c.directBytes, c.directShared)
        let (rootFD, chown, total, written) = (c.rootFD, c.chown, c.total, c.written)
        // The batch of the pack being written.
        var work: BatchWork?
        var (files, places, temps): ([BatchFile], [Where], [[UInt8]]) = ([], [], [])
        var (states, failures) = (Locked<[FileState]>([]), Locked<[Int: String]>([:]))
        do {
            let handles = DirectoryHandles(root: rootFD)
            var open: (file: Int, fd: Int32)?
            defer {
                if let open { close(open.fd) }
                handles.closeAll()
            }
            func fd(_ file: Int) -> Result<Int32, Errno> {
                if let open, open.file == file { return .success(open.fd) }
                if let open { close(open.fd) }
                open = nil
                // The first placement of a file in one pack creates it (only this thread writes it).
                let create = states.withLock { s -> Bool in
                    guard s[file].createdByWriter && !s[file].created else { return false }
                    s[file].created = true
                    return true
                }
                // Read and write: a page delta reads its base page back before patching it.
                let flags = create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR
                let r = handles.fd(places[file].parent, create: false).flatMap { PosixFS.openAt($0, temps[file], flags, mode: 0o600) }
                if case .success(let f) = r { open = (file, f) }
                return r
            }
            /// After the last placement of a file: its size when it ends in a hole, then its
            /// metadata, through the descriptor the content went through.
            func complete(_ file: Int, fd: Int32) {
                let truncate = states.withLock { $0[file].needsTruncate }
                if truncate && ftruncate(fd, off_t(files[file].node.size)) != 0 {
                    failures.withLock { $0[file] = "cannot set its size: \(PosixFS.errorText())" }
                    return
                }
                let inc = Self.applyMetadata(files[file].node, fd: fd, chown: chown)
                states.withLock {
                    $0[file].incomplete = inc
                    $0[file].done = true
                }
            }
            /// A thread that cannot start marks whatever it takes failed, so no file is left
            /// looking complete, and still tells each pack's batch it is done.
            func failEverything(_ error: any Error) {
                while let item = queue.pop() {
                    item.work.failures.withLock { f in for (_, (_, ps)) in item.blobs { for p in ps { f[p.file] = "\(error)" } } }
                    queue.push(item.work.packDone(), of: item.work)
                }
            }
            let opener: BlobOpener
            do {
                opener = try BlobOpener(keys: keys)
            } catch {
                failEverything(error)
                return
            }
            var plain: [UInt8] = []
            // The pack bytes read (a read window's worth; one buffer per thread, it only grows).
            var bytes: [UInt8] = []
            // A run of a large file's bytes, written with O_DIRECT a buffer at a time.
            let stage = DirectStage(capacity: directBytes, shared: directShared)
            /// Writes what the stage holds; its placements then count as written, and the thread
            /// that writes a file's last placement completes it.
            func endStage() {
                guard !stage.isEmpty else { return }
                if failures.withLock({ $0[stage.file] != nil }) {
                    stage.discard()
                    return
                }
                let run = stage.end()
                if let e = run.error {
                    failures.withLock { $0[run.file] = "cannot write: \(e)" }
                    return
                }
                if states.withLock({ s -> Bool in
                    s[run.file].remaining -= run.placements
                    return s[run.file].remaining == 0
                }) {
                    complete(run.file, fd: run.fd)
                }
            }
            // The page a delta is applied to: read back, patched, written (one buffer per thread).
            let page = UnsafeMutableRawBufferPointer.allocate(byteCount: PagedStream.pageSize, alignment: 64)
            defer { page.deallocate() }
            let codec: PageDeltaCodec
            do {
                codec = try PageDeltaCodec()
            } catch {
                failEverything(error)
                return
            }
            while let item = queue.pop() {
                if item.work !== work {
                    // Another batch: every path is resolved afresh for it.
                    if let o = open { close(o.fd) }
                    open = nil
                    handles.closeAll()
                    work = item.work
                    (files, places, temps) = (item.work.files, item.work.places, item.work.temps)
                    (states, failures) = (item.work.states, item.work.failures)
                }
                let (pack, blobs) = (item.pack, item.blobs)
                let sorted = blobs.sorted { $0.value.0.offset < $1.value.0.offset }
                for window in PackFormat.readWindows(sorted.map { $0.value.0.range }, maxBytes: PackFormat.readWindowBytes) {
                    let members = sorted[window.members]
                    do {
                        try store.get(layout.pack(pack), range: window.range, into: &bytes)
                    } catch {
                        failures.withLock { f in
                            for (_, (_, ps)) in members { for p in ps { f[p.file] = "pack \(pack.short) cannot be read: \(error)" } }
                        }
                        continue
                    }
                    for (id, (loc, ps)) in members {
                        // The blob's bytes are plain[0..<raw]; the buffer only grows.
                        let raw: Int
                        do {
                            raw = try bytes.withUnsafeBytes { all in
                                let s = Int(loc.offset) - window.range.lowerBound
                                let sealed = UnsafeRawBufferPointer(rebasing: all[s..<s + Int(loc.length)])
                                return try opener.open(sealed, id: id, location: loc, reusing: &plain)
                            }
                        } catch {
                            failures.withLock { f in for p in ps { f[p.file] = "\(error)" } }
                            continue
                        }
                        for p in ps {
                            // A file already failed keeps its first reason and is written no further.
                            if failures.withLock({ $0[p.file] != nil }) { continue }
                            let node = files[p.file].node
                            let direct =
                                directMin > 0 && node.size >= directMin && !p.delta && !node.flags.contains(.paged)
                            // The run gathered so far ends where this placement does not continue it
                            // (before `fd` may close its descriptor).
                            if !stage.isEmpty && !(direct && stage.file == p.file && stage.next == p.offset) { endStage() }
                            switch fd(p.file) {
                            case .failure(let e): failures.withLock { $0[p.file] = "cannot open for writing: \(e)" }
                            case .success(let f):
                                let piece = p.length.map { Int(p.from)..<Int(p.from) + Int($0) } ?? 0..<raw
                                if direct {
                                    if stage.isEmpty { stage.begin(file: p.file, fd: f, at: p.offset) }
                                    if let e = plain.withUnsafeBytes({ stage.add(UnsafeRawBufferPointer(rebasing: $0[piece])) }) {
                                        failures.withLock { $0[p.file] = "cannot write: \(e)" }
                                        continue
                                    }
                                    // Every placement of the file still unwritten is held here: write them.
                                    if states.withLock({ $0[p.file].remaining == stage.placements }) { endStage() }
                                    continue
                                }
                                if p.delta {
                                    if let problem = Self.applyDelta(plain[piece], codec: codec, page: page, fd: f, at: p.offset) {
                                        failures.withLock { $0[p.file] = problem }
                                        continue
                                    }
                                } else if let e = Self.write(plain[piece], fd: f, at: p.offset) {
                                    failures.withLock { $0[p.file] = "cannot write: \(e)" }
                                    continue
                                }
                                if states.withLock({ s -> Bool in
                                    s[p.file].remaining -= 1
                                    return s[p.file].remaining == 0
                                }) {
                                    complete(p.file, fd: f)
                                }
                            }
                        }
                        if let progress {
                            let due = written.withLock { w -> UInt64? in
                                w.bytes += ps.reduce(0) { $0 + ($1.delta ? 0 : UInt64($1.length.map(Int.init) ?? raw)) }
                                guard Date().timeIntervalSince(w.reported) >= 1 else { return nil }
                                w.reported = Date()
                                return w.bytes
                            }
                            if let due { progress(due, total) }
                        }
                    }
                }
                // A pack is done when every write of it has returned: what a run gathered too.
                endStage()
                queue.push(item.work.packDone(), of: item.work)
            }
        }
    }

    /// Reads the base page at `offset` back into `page`, makes the delta's page of it and writes
    /// that; why it could not.
    private static func applyDelta(
        _ delta: ArraySlice<UInt8>, codec: PageDeltaCodec, page: UnsafeMutableRawBufferPointer, fd: Int32, at offset: UInt64
    ) -> String? {
        var done = 0
        while done < page.count {
            let n = pread(fd, page.baseAddress! + done, page.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return "cannot read back a page to apply its delta: \(Errno(errno))" }
            if n == 0 { return "a page delta lies past the end of the file" }
            done += n
        }
        guard delta.withUnsafeBytes({ codec.apply($0, to: page) }) else {
            return "a page delta is damaged (it does not make a page from its base page)"
        }
        if let e = write(UnsafeRawBufferPointer(page), fd: fd, at: offset) { return "cannot write: \(e)" }
        return nil
    }

    private static func write(_ data: ArraySlice<UInt8>, fd: Int32, at offset: UInt64) -> Errno? {
        data.withUnsafeBytes { write($0, fd: fd, at: offset) }
    }

    static func write(_ buf: UnsafeRawBufferPointer, fd: Int32, at offset: UInt64) -> Errno? {
        var done = 0
        while done < buf.count {
            let n = pwrite(fd, buf.baseAddress! + done, buf.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return Errno(errno)
            }
            done += n
        }
        return nil
    }

    /// Gives a written file (metadata already set) its name, or removes it. Returns why it
    /// failed; then nothing is left under its name.
    private static func name(at w: Where, temp: [UInt8], failed: String?, handles: DirectoryHandles) -> String? {
        let parent: Int32
        switch handles.fd(w.parent, create: false) {
        case .success(let p): parent = p
        case .failure(let e):
            return failed ?? "cannot open its directory: \(e)"
        }
        func remove() -> String {
            if PosixFS.withCName(temp, { unlinkat(parent, $0, 0) }) != 0 && errno != ENOENT {
                return "; its partial copy \(TreeNode.display(w.parent))/\(TreeNode.display(temp)) could not be removed: \(PosixFS.errorText())"
            }
            return ""
        }
        if let failed { return failed + remove() }
        // Never replaces: a name that appeared meanwhile is not overwritten.
        var rc = PosixFS.withCName(temp) { a in PosixFS.withCName(w.name) { b in tresor_renameat2(parent, a, parent, b, tresor_RENAME_NOREPLACE) } }
        if rc != 0 && (errno == EINVAL || errno == ENOSYS) {
            // A file system without RENAME_NOREPLACE: a hard link, which never replaces either,
            // then the temporary name goes.
            rc = PosixFS.withCName(temp) { a in PosixFS.withCName(w.name) { b in linkat(parent, a, parent, b, 0) } }
            if rc == 0 && PosixFS.withCName(temp, { unlinkat(parent, $0, 0) }) != 0 {
                return "named, but its temporary name \(TreeNode.display(temp)) could not be removed: \(PosixFS.errorText())"
            }
        }
        if rc != 0 {
            let e = PosixFS.errorText()
            return "cannot give it its name: \(e)" + remove()
        }
        return nil
    }

    /// Owner (as root), mode, extended attributes and times through the object's own descriptor;
    /// what could not be set.
    static func applyMetadata(_ n: TreeNode, fd: Int32, chown: Bool) -> String? {
        var problems: [String] = []
        if chown && fchown(fd, n.uid, n.gid) != 0 { problems.append("owner: \(PosixFS.errorText())") }
        if fchmod(fd, mode_t(n.mode)) != 0 { problems.append("mode: \(PosixFS.errorText())") }
        for x in n.xattrs {
            if let e = PosixFS.setExtendedAttribute(fd, x) { problems.append("attribute \(TreeNode.display(x.name)): \(e)") }
        }
        var times = Self.times(n)
        if futimens(fd, &times) != 0 { problems.append("times: \(PosixFS.errorText())") }
        return problems.isEmpty ? nil : "not set: " + problems.joined(separator: ", ")
    }

    private static func times(_ n: TreeNode) -> [timespec] {
        let t = timespec(tv_sec: Int(n.mtimeSeconds), tv_nsec: Int(n.mtimeNanoseconds))
        return [t, t]
    }

    /// Symlinks, FIFOs, device nodes and sockets.
    private func restoreOther(_ n: TreeNode, handles: DirectoryHandles, chown: Bool, report: inout Report) {
        let w = Where(n.pathBytes)
        let parent: Int32
        switch handles.fd(w.parent, create: true) {
        case .success(let p): parent = p
        case .failure(let e):
            report.failed[n.displayPath] = "cannot open its directory: \(e)"
            return
        }
        let rc: Int32
        switch n.kind {
        case .symlink:
            rc = PosixFS.withCName(n.linkTargetBytes) { t in PosixFS.withCName(w.name) { symlinkat(t, parent, $0) } }
        case .fifo:
            rc = PosixFS.withCName(w.name) { mkfifoat(parent, $0, 0o600) }
        case .characterDevice, .blockDevice:
            guard chown else {
                report.incomplete[n.displayPath] = "device node not restored: creating one needs root"
                return
            }
            let type = n.kind == .characterDevice ? S_IFCHR : S_IFBLK
            rc = PosixFS.withCName(w.name) { mknodat(parent, $0, type | 0o600, dev_t(n.rdev)) }
        case .socket:
            report.incomplete[n.displayPath] = "socket not restored: a socket is created by the program that listens on it"
            return
        case .file, .directory:
            return
        }
        guard rc == 0 else {
            report.failed[n.displayPath] = "cannot create: \(PosixFS.errorText())"
            return
        }
        if n.kind == .symlink {
            report.symlinks += 1
            var problems: [String] = []
            if chown && PosixFS.withCName(w.name, { fchownat(parent, $0, n.uid, n.gid, AT_SYMLINK_NOFOLLOW) }) != 0 {
                problems.append("owner: \(PosixFS.errorText())")
            }
            var times = Self.times(n)
            if PosixFS.withCName(w.name, { utimensat(parent, $0, &times, AT_SYMLINK_NOFOLLOW) }) != 0 {
                problems.append("times: \(PosixFS.errorText())")
            }
            if !problems.isEmpty { report.incomplete[n.displayPath] = "not set: " + problems.joined(separator: ", ") }
            return
        }
        report.specialFiles += 1
        // Opening a FIFO or device could block or act on the device: change it through an O_PATH
        // descriptor's /proc name instead, which names that very inode and follows nothing.
        switch PosixFS.openAt(parent, w.name, tresor_O_PATH) {
        case .failure(let e):
            report.incomplete[n.displayPath] = "cannot open to set owner, mode and times: \(e)"
        case .success(let fd):
            defer { close(fd) }
            let proc = "/proc/self/fd/\(fd)"
            var problems: [String] = []
            if chown && Glibc.chown(proc, n.uid, n.gid) != 0 { problems.append("owner: \(PosixFS.errorText())") }
            if chmod(proc, mode_t(n.mode)) != 0 { problems.append("mode: \(PosixFS.errorText())") }
            var times = Self.times(n)
            if utimensat(AT_FDCWD, proc, &times, 0) != 0 { problems.append("times: \(PosixFS.errorText())") }
            if !problems.isEmpty { report.incomplete[n.displayPath] = "not set: " + problems.joined(separator: ", ") }
        }
    }

    /// Opens the target (creating it when missing); it must be an empty directory, not a symlink.
    private func prepareTarget(_ target: String) throws -> Int32 {
        var st = stat()
        if Glibc.lstat(target, &st) != 0 {
            do {
                try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            } catch {
                throw RepositoryError(.usage, "cannot create restore target \(target): \(error.localizedDescription)")
            }
        }
        let fd = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw RepositoryError(
                .usage, "restore target \(target) cannot be opened as a directory: \(PosixFS.errorText())",
                hint: "choose an empty or new directory")
        }
        switch PosixFS.listDirectory(fd) {
        case .success(let names) where names.isEmpty:
            return fd
        case .success:
            close(fd)
            throw RepositoryError(.usage, "restore target \(target) is not empty", hint: "choose an empty or new directory")
        case .failure(let e):
            close(fd)
            throw RepositoryError(.failed, "cannot list restore target \(target): \(e)")
        }
    }
}

extension Result where Failure == Errno {
    /// The value, or a ``RepositoryError`` saying `what` with the errno text.
    func get(or what: String) throws -> Success {
        switch self {
        case .success(let v): return v
        case .failure(let e): throw RepositoryError(.failed, "\(what): \(e)")
        }
    }
}

/// One relative path split for `openat`: its parent directory's path and its last name.
struct Where {
    var parent: [UInt8]
    var name: [UInt8]
    init(_ path: [UInt8]) {
        if let slash = path.lastIndex(of: 0x2F) {
            parent = Array(path[..<slash])
            name = Array(path[(slash + 1)...])
        } else {
            parent = []
            name = path
        }
    }
}

/// Descriptors of directories under a restore target, opened one component at a time with
/// `O_NOFOLLOW | O_DIRECTORY` from the target's descriptor and cached (about 256 at most; one
/// cache per thread).
final class DirectoryHandles {
    private let root: Int32
    private var cache: [[UInt8]: Int32] = [:]

    init(root: Int32) { self.root = root }

    /// The descriptor of directory `path` (relative; empty is the target). With `create`, missing
    /// directories are made (mode 0755, as parents of a selected subtree). Owned by the cache and
    /// valid until the next call with `evict` (the default), which may close every cached one;
    /// pass `evict: false` while holding a descriptor from an earlier call.
    func fd(_ path: [UInt8], create: Bool, evict: Bool = true) -> Result<Int32, Errno> {
        if evict && cache.count >= 256 && cache[path] == nil { closeAll() }
        return resolve(path, create: create)
    }

    private func resolve(_ path: [UInt8], create: Bool) -> Result<Int32, Errno> {
        if path.isEmpty { return .success(root) }
        if let fd = cache[path] { return .success(fd) }
        let w = Where(path)
        let name = w.name
        let parent: Int32
        switch resolve(w.parent, create: create) {
        case .success(let p): parent = p
        case .failure(let e): return .failure(e)
        }
        var opened = PosixFS.openAt(parent, name, O_RDONLY | O_DIRECTORY)
        if create, case .failure(let e) = opened, e.code == ENOENT {
            if PosixFS.withCName(name, { mkdirat(parent, $0, 0o755) }) != 0 && errno != EEXIST { return .failure(Errno(errno)) }
            opened = PosixFS.openAt(parent, name, O_RDONLY | O_DIRECTORY)
        }
        guard case .success(let fd) = opened else { return opened }
        cache[path] = fd
        return .success(fd)
    }

    func closeAll() {
        for fd in cache.values { close(fd) }
        cache.removeAll(keepingCapacity: true)
    }
}
