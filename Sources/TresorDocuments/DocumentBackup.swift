import Foundation
import TresorCore
import TresorRepository

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Backs up a tenant's document roots into one snapshot.
///
/// The walker visits each root depth-first in bytewise name order, holding a descriptor for each
/// directory on the way down and naming entries relative to it (`openat`, `fstatat`), so names are
/// bytes and paths of any length work. Only an entry that vanished since its directory was listed
/// (ENOENT) is left out quietly; every other failure is added to the snapshot's `skipped` list
/// with its reason, which makes the run's outcome "problem found". Regular files are opened with
/// `O_NONBLOCK | O_NOFOLLOW` and must still be a regular file once open: a FIFO, socket or device
/// swapped in is recorded as what it is and never read. Hard links (same device and inode) are
/// read once. Files with holes are read extent by extent (`SEEK_DATA`/`SEEK_HOLE`), the holes
/// recorded, not stored. Extended attributes (POSIX ACLs among them) are recorded.
///
/// A regular file whose size, mtime, ctime, device and inode match the parent snapshot's entry
/// (and whose chunks the index still has) is recorded with the parent's chunk list without being
/// read. Any other file is read in
/// large buffers, cut by the tenant's FastCDC chunker, each chunk identified by its keyed hash,
/// and handed to the ``BlobWriter``, which drops chunks the tenant already has and packs the rest
/// on worker threads. A file whose size or mtime differs after reading from before is read
/// again, up to the policy's retry count, and then recorded with the `changedDuringBackup` flag.
/// Finally the tree is serialised, chunked into tree blobs, and the manifest stored last.
public final class DocumentBackup {
    /// Progress reported while the backup runs (from the walking thread).
    public struct Progress: Sendable {
        public var files = 0
        public var bytes: UInt64 = 0
        public var bytesRead: UInt64 = 0
        public var currentPath = ""
    }

    /// One root to back up, with the label its contents appear under.
    public struct Root: Sendable {
        public var path: String
        public var label: String
        public init(path: String, label: String) {
            self.path = path
            self.label = label
        }
    }

    private let repo: TenantRepository
    private let index: RepositoryIndex
    private let writer: BlobWriter
    private let policy: Policy.Backup
    private let clock: any Clock
    private let chunks: ChunkStream
    private let progressCallback: ((Progress) -> Void)?
    private var progress = Progress()
    private var stats = SnapshotManifest.Stats()
    /// The new tree, encoded node by node into its own chunk stream as the walk records them.
    private let treeChunks: ChunkStream
    private var nodeBytes = ByteWriter(capacity: 1 << 12)
    private var parent: ParentFiles?
    private var linked: [FileID: TreeNode] = [:]
    private var lastProgress = 0.0
    /// Called with a regular file's path (relative, as in the tree) just before it is opened; for
    /// tests that swap the file for something else between listing and reading.
    public var beforeOpeningFile: ((_ relative: [UInt8]) -> Void)?

    public init(
        repository: TenantRepository, index: RepositoryIndex, policy: Policy.Backup, clock: any Clock,
        progress: ((Progress) -> Void)? = nil
    ) throws {
        self.repo = repository
        self.index = index
        self.policy = policy
        self.clock = clock
        self.writer = try BlobWriter(
            repository: repository, index: index, settings: .init(policy: policy, uploaders: repository.store.capabilities.writeConcurrency))
        self.chunks = ChunkStream(repository: repository, writer: writer)
        self.treeChunks = ChunkStream(repository: repository, writer: writer)
        self.progressCallback = progress
    }

    /// Labels for roots: the last path component, made unique with `-2`, `-3`, ….
    public static func roots(for paths: [String]) -> [Root] {
        var used = Set<String>()
        return paths.map { p in
            let base = (p as NSString).lastPathComponent
            var label = base.isEmpty || base == "/" ? "root" : base
            var n = 2
            while used.contains(label) {
                label = "\(base)-\(n)"
                n += 1
            }
            used.insert(label)
            return Root(path: p, label: label)
        }
    }

    /// Runs the backup and stores the snapshot. `parentNodes` (the previous snapshot's tree)
    /// lets unchanged files be skipped.
    public func run(roots: [Root], parentID: ObjectID?, parentNodes: [TreeNode]) throws -> (id: ObjectID, manifest: SnapshotManifest) {
        var rest = parentNodes.makeIterator()
        return try run(roots: roots, parentID: parentID, parent: parentNodes.isEmpty ? nil : { rest.next() })
    }

    /// Runs the backup and stores the snapshot. `parent` yields the previous snapshot's nodes in
    /// tree order (a ``TreeNodeStream``): it is read alongside the walk, which visits paths in the
    /// same order, so neither the parent's tree nor the new one is ever held whole.
    public func run(roots: [Root], parentID: ObjectID?, parent next: (() throws -> TreeNode?)?) throws -> (id: ObjectID, manifest: SnapshotManifest) {
        let started = clock.now()
        parent = next.map { ParentFiles(next: $0, roots: roots.map { Array($0.label.utf8) }) }
        treeChunks.begin(type: .tree)
        nodeBytes.raw(TreeCodec.header(paged: false))  // documents are never paged
        do {
            for root in roots {
                let fd = open(root.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                var st = stat()
                guard fd >= 0, fstat(fd, &st) == 0 else {
                    let why = PosixFS.errorText()
                    if fd >= 0 { close(fd) }
                    throw FS.Error(
                        kind: .usage, message: "document root \(root.path) of tenant '\(repo.tenant)' cannot be opened as a directory: \(why)",
                        hint: "create it, or fix the tenant's --docs roots")
                }
                defer { close(fd) }
                try walkDirectory(fd: fd, relative: Array(root.label.utf8), st: st)
            }
            // The tree goes through the same chunker and writer as file content.
            try flushTree()
            let treeIDs = try treeChunks.finish().map(\.hex)
            let written = try writer.finish()
            stats.newBlobs = written.newBlobs
            stats.newBytesStored = written.packBytes
            let manifest = SnapshotManifest(
                tenant: repo.tenant.rawValue, kind: .documents, time: TimeFormat.string(started, fractional: true),
                hostname: ProcessInfo.processInfo.hostName,
                roots: roots.map { .init(path: $0.path, label: $0.label) },
                parent: parentID?.hex, tree: treeIDs, stats: stats)
            let id = try repo.saveSnapshot(manifest, level: policy.compressionLevel)
            return (id, manifest)
        } catch {
            // The run already failed with `error`; a second failure while draining adds nothing.
            _ = try? writer.finish()
            throw error
        }
    }

    /// Adds one node to the new tree (the walk's order is the tree's order).
    private func record(_ n: TreeNode) throws {
        TreeCodec.encodeNode(n, into: &nodeBytes)
        if nodeBytes.bytes.count >= 1 << 16 { try flushTree() }
    }

    private func flushTree() throws {
        try nodeBytes.bytes.withUnsafeBytes { try treeChunks.append($0) }
        nodeBytes.removeAll()
    }

    private func skip(_ relative: [UInt8], _ reason: String) {
        stats.skipped.append(TreeNode.display(relative) + ": " + reason)
    }

    private static func child(_ relative: [UInt8], _ name: [UInt8]) -> [UInt8] {
        var p = relative
        p.reserveCapacity(relative.count + 1 + name.count)
        p.append(0x2F)
        p += name
        return p
    }

    /// Records the directory open as `fd` and everything under it.
    private func walkDirectory(fd: Int32, relative: [UInt8], st: stat) throws {
        var dir = node(relative, .directory, st)
        dir.xattrs = attributes(fd, relative)
        try record(dir)
        stats.directories += 1
        let names: [[UInt8]]
        switch PosixFS.listDirectory(fd) {
        case .success(let n): names = n
        case .failure(let e):
            skip(relative, "cannot list: \(e)")
            return
        }
        for name in names {
            let path = Self.child(relative, name)
            let cst: stat
            switch PosixFS.lstatAt(fd, name) {
            case .success(let s): cst = s
            case .failure(let e) where e.code == ENOENT: continue  // vanished since listing
            case .failure(let e):
                skip(path, "cannot stat: \(e)")
                continue
            }
            try walkEntry(dir: fd, name: name, relative: path, st: cst)
        }
    }

    private func walkEntry(dir: Int32, name: [UInt8], relative: [UInt8], st: stat) throws {
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            let cfd: Int32
            switch PosixFS.openAt(dir, name, O_RDONLY | O_DIRECTORY | O_NONBLOCK) {
            case .success(let f): cfd = f
            case .failure(let e) where e.code == ENOENT: return  // vanished since listing
            case .failure(let e):
                skip(relative, "cannot open directory: \(e)")
                return
            }
            defer { close(cfd) }
            var now = stat()
            guard fstat(cfd, &now) == 0 else {
                skip(relative, "cannot stat directory: \(PosixFS.errorText())")
                return
            }
            try walkDirectory(fd: cfd, relative: relative, st: now)
        case S_IFREG:
            try backupFile(dir: dir, name: name, relative: relative, st: st)
        case S_IFLNK:
            var n = node(relative, .symlink, st)
            switch PosixFS.readLinkAt(dir, name, sizeHint: Int(st.st_size)) {
            case .success(let target): n.linkTargetBytes = target
            case .failure(let e) where e.code == ENOENT: return  // vanished since listing
            case .failure(let e):
                skip(relative, "cannot read link: \(e)")
                return
            }
            try record(n)
            stats.symlinks += 1
        default:
            try recordSpecial(relative, st)
        }
    }

    /// A FIFO, socket or device node: recorded as what it is, never opened.
    private func recordSpecial(_ relative: [UInt8], _ st: stat) throws {
        let kind: TreeNode.Kind
        switch st.st_mode & S_IFMT {
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        default:
            skip(relative, "unknown file type \(String(st.st_mode & S_IFMT, radix: 8))")
            return
        }
        var n = node(relative, kind, st)
        n.size = 0
        n.rdev = UInt64(st.st_rdev)
        try record(n)
    }

    /// Extended attributes of the open file; a failure to read them is reported, not dropped.
    private func attributes(_ fd: Int32, _ relative: [UInt8]) -> [TreeNode.ExtendedAttribute] {
        switch PosixFS.extendedAttributes(fd) {
        case .success(let x): return x
        case .failure(let e):
            skip(relative, "cannot read extended attributes: \(e)")
            return []
        }
    }

    private func node(_ relative: [UInt8], _ kind: TreeNode.Kind, _ st: stat) -> TreeNode {
        var n = TreeNode(
            pathBytes: relative, kind: kind, mode: UInt32(st.st_mode & 0o7777),
            mtimeSeconds: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: UInt32(st.st_mtim.tv_nsec),
            uid: st.st_uid, gid: st.st_gid, size: UInt64(st.st_size),
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        n.ctimeSeconds = Int64(st.st_ctim.tv_sec)
        n.ctimeNanoseconds = UInt32(st.st_ctim.tv_nsec)
        return n
    }

    private func reportProgress(_ path: [UInt8]) {
        guard let cb = progressCallback else { return }
        let t = Date().timeIntervalSince1970
        if t - lastProgress >= 1 {
            lastProgress = t
            progress.currentPath = TreeNode.display(path)
            cb(progress)
        }
    }

    private struct FileID: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private func backupFile(dir: Int32, name: [UInt8], relative: [UInt8], st: stat) throws {
        var n = node(relative, .file, st)
        stats.files += 1
        stats.bytes += n.size
        progress.files += 1
        progress.bytes += n.size
        if let old = try parent?.file(at: relative), old.size == n.size, old.mtimeSeconds == n.mtimeSeconds,
            old.mtimeNanoseconds == n.mtimeNanoseconds, old.ctimeSeconds == n.ctimeSeconds,
            old.ctimeNanoseconds == n.ctimeNanoseconds, old.inode == n.inode, old.device == n.device,
            !old.flags.contains(.changedDuringBackup), old.chunks.allSatisfy({ index.contains($0) })
        {
            n.chunks = old.chunks
            n.xattrs = old.xattrs  // ctime unchanged: attributes unchanged too
            n.extents = old.extents
            n.flags = old.flags
            remember(n, st)
            try record(n)
            return
        }
        // A second name of a file already read in this run: same content, not read again.
        if st.st_nlink > 1, let first = linked[FileID(device: n.device, inode: n.inode)] {
            var copy = first
            copy.pathBytes = relative
            try record(copy)
            return
        }
        var attempt = 0
        beforeOpeningFile?(relative)
        while true {
            let fd: Int32
            switch PosixFS.openAt(dir, name, O_RDONLY | O_NONBLOCK | O_NOCTTY) {
            case .success(let f): fd = f
            case .failure(let e):
                stats.files -= 1
                stats.bytes -= n.size
                if e.code == ENOENT { return }  // vanished since listing
                if e.code == ELOOP || e.code == ENXIO, case .success(let now) = PosixFS.lstatAt(dir, name), !FS.isRegular(now) {
                    // Replaced by a symlink or a socket since listing: record what is there now.
                    try walkEntry(dir: dir, name: name, relative: relative, st: now)
                    return
                }
                skip(relative, "cannot open: \(e)")
                return
            }
            var before = stat()
            fstat(fd, &before)
            if !FS.isRegular(before) {
                // Swapped for a FIFO or device since listing: never read it.
                close(fd)
                stats.files -= 1
                stats.bytes -= n.size
                try recordSpecial(relative, before)
                return
            }
            let xattrs = attributes(fd, relative)
            let result: (chunks: [ObjectID], bytes: UInt64, extents: [TreeNode.Extent]?)
            do {
                result = try readChunks(fd: fd, relative: relative, st: before)
            } catch let e as Errno {
                // A read error (EIO, …) loses this file, not the run: reported in the skipped list.
                close(fd)
                stats.files -= 1
                stats.bytes -= n.size
                skip(relative, "cannot read: \(e)")
                return
            } catch {
                close(fd)
                throw error
            }
            var after = stat()
            fstat(fd, &after)
            close(fd)
            stats.filesRead += 1
            stats.bytesRead += result.bytes
            let stored = result.extents.map { $0.reduce(0) { $0 + $1.length } } ?? UInt64(after.st_size)
            let stable =
                before.st_size == after.st_size && before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec
                && stored == result.bytes
            if stable || attempt >= policy.changedFileRetries {
                n = node(relative, .file, after)
                n.chunks = result.chunks
                n.xattrs = xattrs
                if let extents = result.extents {
                    n.extents = extents
                    n.flags.insert(.sparse)
                    if let last = extents.last { n.size = max(n.size, last.offset + last.length) }
                } else {
                    n.size = result.bytes
                }
                if !stable {
                    n.flags.insert(.changedDuringBackup)
                    stats.changedDuringBackup.append(TreeNode.display(relative))
                }
                remember(n, after)
                try record(n)
                return
            }
            attempt += 1
        }
    }

    private func remember(_ n: TreeNode, _ st: stat) {
        if st.st_nlink > 1 { linked[FileID(device: n.device, inode: n.inode)] = n }
    }

    /// Reads the open file to its end, chunking as it goes. A file with holes (fewer blocks than
    /// its size needs) is read extent by extent, with a cut at each extent's end, and its extents
    /// are returned.
    private func readChunks(fd: Int32, relative: [UInt8], st: stat) throws -> (chunks: [ObjectID], bytes: UInt64, extents: [TreeNode.Extent]?) {
        chunks.begin()
        let onCut: (Int) -> Void = { [unowned self] cut in
            progress.bytesRead += UInt64(cut)
            reportProgress(relative)
        }
        let extents = UInt64(st.st_blocks) * 512 < UInt64(st.st_size) ? PosixFS.dataExtents(fd, size: UInt64(st.st_size)) : nil
        if let extents {
            for e in extents {
                guard lseek(fd, off_t(e.offset), SEEK_SET) >= 0 else { throw Errno(errno) }
                try chunks.appendFile(fd, limit: e.length, progress: onCut)
                _ = try chunks.finish()  // cut at the extent's end so no chunk spans a hole
            }
        } else {
            try chunks.appendFile(fd, progress: onCut)
        }
        return (try chunks.finish(), chunks.byteCount, extents)
    }
}

/// The parent snapshot's files, read alongside the walk. The walk visits each root in the order
/// given and, inside it, paths depth-first in bytewise name order, which is the order the parent's
/// tree was written in; so each lookup only moves forward. A parent whose roots came in another
/// order only costs re-reading: a file is taken from the parent only on an exact path match.
final class ParentFiles {
    private let next: () throws -> TreeNode?
    private let roots: [[UInt8]]
    private var pending: TreeNode?
    private var done = false

    init(next: @escaping () throws -> TreeNode?, roots: [[UInt8]]) {
        self.next = next
        self.roots = roots
    }

    /// The parent's regular file at `path`, if it has one. Calls must come in walk order.
    func file(at path: [UInt8]) throws -> TreeNode? {
        while !done {
            if pending == nil {
                pending = try next()
                if pending == nil {
                    done = true
                    return nil
                }
            }
            switch Self.order(pending!.pathBytes, path, roots: roots) {
            case .orderedAscending: pending = nil
            case .orderedSame: return pending!.kind == .file ? pending : nil
            case .orderedDescending: return nil
            }
        }
        return nil
    }

    enum Order { case orderedAscending, orderedSame, orderedDescending }

    /// Walk order: by root (a root the walk does not have first, so its entries are passed
    /// over), then segment by segment, bytewise; a directory before what it holds.
    static func order(_ a: [UInt8], _ b: [UInt8], roots: [[UInt8]]) -> Order {
        let ea = a.firstIndex(of: 0x2F) ?? a.count, eb = b.firstIndex(of: 0x2F) ?? b.count
        func rank(_ label: ArraySlice<UInt8>) -> Int { roots.firstIndex { $0.elementsEqual(label) } ?? -1 }
        let ra = rank(a[..<ea]), rb = rank(b[..<eb])
        if ra != rb { return ra < rb ? .orderedAscending : .orderedDescending }
        // Same root: '/' sorts below every byte of a name, and the end of a path below '/'.
        var i = ea, j = eb
        while true {
            let ca = i < a.count ? (a[i] == 0x2F ? -1 : Int(a[i])) : -2
            let cb = j < b.count ? (b[j] == 0x2F ? -1 : Int(b[j])) : -2
            if ca != cb { return ca < cb ? .orderedAscending : .orderedDescending }
            if ca == -2 { return .orderedSame }
            i += 1
            j += 1
        }
    }
}
