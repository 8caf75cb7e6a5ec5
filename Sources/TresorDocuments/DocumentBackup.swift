#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TresorCore
import TresorRepository

/// Backs up a tenant's document roots into one snapshot.
///
/// The walker visits each root depth-first in bytewise name order. A regular file whose size,
/// mtime, device and inode match the parent snapshot's entry (and whose chunks the index still
/// has) is recorded with the parent's chunk list without being read. Any other file is read in
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
    private var nodes: [TreeNode] = []
    private var parentByPath: [String: TreeNode] = [:]
    private var lastProgress = 0.0

    public init(repository: TenantRepository, index: RepositoryIndex, policy: Policy.Backup, clock: any Clock,
                progress: ((Progress) -> Void)? = nil) throws {
        self.repo = repository
        self.index = index
        self.policy = policy
        self.clock = clock
        self.writer = try BlobWriter(repository: repository, index: index, settings: .init(policy: policy, uploaders: repository.store.capabilities.writeConcurrency))
        self.chunks = ChunkStream(repository: repository, writer: writer)
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

    /// Runs the backup and stores the snapshot. `parent` (nodes of the previous snapshot) lets
    /// unchanged files be skipped.
    public func run(roots: [Root], parentID: ObjectID?, parentNodes: [TreeNode]) throws -> (id: ObjectID, manifest: SnapshotManifest) {
        let started = clock.now()
        for n in parentNodes where n.kind == .file { parentByPath[n.path] = n }
        do {
            for root in roots {
                guard let st = FS.lstat(root.path), FS.isDirectory(st) else {
                    throw FS.Error(kind: .usage, message: "document root \(root.path) of tenant '\(repo.tenant)' does not exist or is not a directory",
                                   hint: "create it, or fix the tenant's --docs roots")
                }
                try walk(path: root.path, relative: root.label, st: st)
            }
            // The tree goes through the same chunker and writer as file content.
            let treeIDs = try chunks.storeTree(TreeCodec.encode(nodes))
            let written = try writer.finish()
            stats.newBlobs = written.newBlobs
            stats.newBytesStored = written.packBytes
            let manifest = SnapshotManifest(
                tenant: repo.tenant, kind: "documents", time: TimeFormat.string(started, fractional: true),
                hostname: ProcessInfo.processInfo.hostName,
                roots: roots.map { .init(path: $0.path, label: $0.label) },
                parent: parentID?.hex, tree: treeIDs, stats: stats)
            let id = try repo.saveSnapshot(manifest, level: policy.compressionLevel)
            return (id, manifest)
        } catch {
            _ = try? writer.finish()
            throw error
        }
    }

    private func walk(path: String, relative: String, st: stat) throws {
        if FS.isDirectory(st) {
            nodes.append(node(relative, .directory, st))
            stats.directories += 1
            let names: [String]
            do {
                names = try FS.listDirectory(path)
            } catch {
                stats.skipped.append(relative + ": " + "\(error)")
                return
            }
            for name in names {
                let childPath = path + "/" + name
                guard let cst = FS.lstat(childPath) else { continue } // vanished since listing
                try walk(path: childPath, relative: relative + "/" + name, st: cst)
            }
        } else if FS.isRegular(st) {
            try backupFile(path: path, relative: relative, st: st)
        } else if FS.isSymlink(st) {
            var n = node(relative, .symlink, st)
            do {
                n.linkTarget = try FS.readLink(path)
            } catch {
                stats.skipped.append(relative + ": \(error)")
                return
            }
            nodes.append(n)
            stats.symlinks += 1
        } else {
            stats.skipped.append(relative + ": not a regular file, directory or symlink")
        }
    }

    private func node(_ relative: String, _ kind: TreeNode.Kind, _ st: stat) -> TreeNode {
        TreeNode(path: relative, kind: kind, mode: UInt32(st.st_mode & 0o7777),
                 mtimeSeconds: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: UInt32(st.st_mtim.tv_nsec),
                 uid: st.st_uid, gid: st.st_gid, size: UInt64(st.st_size),
                 device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    private func reportProgress(_ path: String) {
        guard let cb = progressCallback else { return }
        let t = Date().timeIntervalSince1970
        if t - lastProgress >= 1 {
            lastProgress = t
            progress.currentPath = path
            cb(progress)
        }
    }

    private func backupFile(path: String, relative: String, st: stat) throws {
        var n = node(relative, .file, st)
        stats.files += 1
        stats.bytes += n.size
        progress.files += 1
        progress.bytes += n.size
        if let old = parentByPath[relative], old.size == n.size, old.mtimeSeconds == n.mtimeSeconds,
           old.mtimeNanoseconds == n.mtimeNanoseconds, old.inode == n.inode, old.device == n.device,
           old.flags.isEmpty, old.chunks.allSatisfy({ index.contains($0) }) {
            n.chunks = old.chunks
            nodes.append(n)
            return
        }
        var attempt = 0
        while true {
            let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                stats.skipped.append(relative + ": cannot open: " + FS.errorText())
                stats.files -= 1
                return
            }
            var before = stat()
            fstat(fd, &before)
            let result: (chunks: [ObjectID], bytes: UInt64)
            do {
                result = try readChunks(fd: fd, relative: relative)
            } catch {
                close(fd)
                throw error
            }
            var after = stat()
            fstat(fd, &after)
            close(fd)
            stats.filesRead += 1
            stats.bytesRead += result.bytes
            let stable = before.st_size == after.st_size && before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
                before.st_mtim.tv_nsec == after.st_mtim.tv_nsec && UInt64(after.st_size) == result.bytes
            if stable || attempt >= policy.changedFileRetries {
                n = node(relative, .file, after)
                n.chunks = result.chunks
                n.size = result.bytes
                if !stable {
                    n.flags.insert(.changedDuringBackup)
                    stats.changedDuringBackup.append(relative)
                }
                nodes.append(n)
                return
            }
            attempt += 1
        }
    }

    /// Reads the open file to its end, chunking as it goes.
    private func readChunks(fd: Int32, relative: String) throws -> (chunks: [ObjectID], bytes: UInt64) {
        chunks.begin()
        do {
            try chunks.appendFile(fd) { cut in
                progress.bytesRead += UInt64(cut)
                reportProgress(relative)
            }
        } catch let e as RepositoryError where e.code == .failed {
            throw FS.Error(kind: .failed, message: "\(relative): \(e.message)", hint: nil)
        }
        return (try chunks.finish(), chunks.byteCount)
    }
}
