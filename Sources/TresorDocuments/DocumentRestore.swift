#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TresorCore
import TresorRepository
import TresorStore

/// Restores a snapshot (or a subtree of it) into a directory.
///
/// Algorithm: (1) every selected path is checked to stay inside the target (no empty, `.` or `..`
/// segments, not absolute); (2) directories are created, then every regular file is created empty
/// at its final size; (3) the blobs are grouped by the pack that holds them, and worker threads
/// take one pack at a time, read the byte range covering the needed blobs in one request, open
/// each blob and write it at every offset where it occurs, in whichever files; (4) file modes and
/// times are set, symlinks created, and directory modes and times set deepest first. Symlinks are
/// created last, so no write ever goes through a link, and the target must be empty, so nothing
/// there predates the restore.
///
/// A blob that cannot be read or fails authentication marks the files that need it as failed;
/// everything else is still restored, and the report lists the failures.
public final class DocumentRestore {
    /// What a restore did.
    public struct Report: Sendable, Codable {
        public var files = 0
        public var directories = 0
        public var symlinks = 0
        public var bytes: UInt64 = 0
        /// Paths that could not be restored completely, with the reason.
        public var failed: [String: String] = [:]
    }

    private struct Placement {
        var file: Int
        var offset: Int
    }

    private let repo: TenantRepository
    private let index: RepositoryIndex
    private let threads: Int

    private let progress: (@Sendable (_ bytesWritten: UInt64, _ totalBytes: UInt64) -> Void)?

    /// `progress`, when given, is called about once a second from a restore thread.
    public init(repository: TenantRepository, index: RepositoryIndex, threads: Int = 2 * availableCores,
                progress: (@Sendable (_ bytesWritten: UInt64, _ totalBytes: UInt64) -> Void)? = nil) {
        self.repo = repository
        self.index = index
        self.threads = threads
        self.progress = progress
    }

    /// Selects the nodes at `subpath` (the node itself and everything under it).
    public static func select(_ nodes: [TreeNode], subpath: String?) -> [TreeNode] {
        guard let raw = subpath else { return nodes }
        let sub = raw.split(separator: "/").joined(separator: "/")
        if sub.isEmpty { return nodes }
        return nodes.filter { $0.path == sub || $0.path.hasPrefix(sub + "/") }
    }

    /// True when `path` is a plain relative path that cannot leave the directory it is joined to.
    public static func isContained(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/") else { return false }
        return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { seg in
            !seg.isEmpty && seg != "." && seg != ".." && !seg.contains("\0")
        }
    }

    public func restore(nodes selected: [TreeNode], to target: String) throws -> Report {
        var report = Report()
        // Refuse before anything is created.
        for n in selected where !Self.isContained(n.path) {
            throw RepositoryError(.corrupt, "snapshot path '\(n.path)' would escape the target directory; refusing to restore it")
        }
        try prepareTarget(target)
        let isRoot = getuid() == 0
        // Parents before children: create directories (owner-writable until the end).
        for n in selected where n.kind == .directory {
            try ensureParent(of: n.path, in: target)
            let p = target + "/" + n.path
            if mkdir(p, 0o700) != 0 && errno != EEXIST {
                throw FS.Error(kind: .failed, message: "cannot create \(p): \(FS.errorText())", hint: nil)
            }
            report.directories += 1
        }
        let files = selected.filter { $0.kind == .file }
        for n in files {
            let p = target + "/" + n.path
            try ensureParent(of: n.path, in: target)
            let fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw FS.Error(kind: .failed, message: "cannot create \(p): \(FS.errorText())", hint: nil) }
            if n.size > 0 { ftruncate(fd, off_t(n.size)) }
            close(fd)
            report.files += 1
            report.bytes += n.size
        }

        // Which blob goes where, grouped by pack.
        var byPack: [ObjectID: [ObjectID: (BlobLocation, [Placement])]] = [:]
        var failed = [Int: String]()
        for (i, n) in files.enumerated() {
            var offset = 0
            for c in n.chunks {
                guard let loc = index.location(of: c) else {
                    failed[i] = "chunk \(c.short) is missing from the index"
                    break
                }
                byPack[loc.pack, default: [:]][c, default: (loc, [])].1.append(Placement(file: i, offset: offset))
                offset += Int(loc.rawLength)
            }
        }
        let failures = Locked(failed)
        let queue = BlockingQueue<(ObjectID, [ObjectID: (BlobLocation, [Placement])])>(capacity: max(1, byPack.count))
        for (pack, blobs) in byPack { queue.push((pack, blobs)) }
        queue.close()
        let paths = files.map { target + "/" + $0.path }
        let keys = repo.keys
        let store = repo.store
        let layout = repo.layout
        let written = Locked((bytes: UInt64(0), reported: Date()))
        let total = report.bytes
        let progress = self.progress
        runOnThreads(threads, name: "restore") { _ in
            guard let opener = try? BlobOpener(keys: keys) else { return }
            var plain: [UInt8] = []
            while let (pack, blobs) = queue.pop() {
                let sorted = blobs.sorted { $0.value.0.offset < $1.value.0.offset }
                for window in PackFormat.readWindows(sorted.map { $0.value.0.range }, maxBytes: PackFormat.readWindowBytes) {
                    let members = sorted[window.members]
                    let bytes: [UInt8]
                    do {
                        bytes = try store.get(layout.pack(pack), range: window.range)
                    } catch {
                        failures.withLock { f in
                            for (_, (_, places)) in members { for p in places { f[p.file] = "pack \(pack.short) cannot be read: \(error)" } }
                        }
                        continue
                    }
                    for (id, (loc, places)) in members {
                        do {
                            try bytes.withUnsafeBytes { all in
                                let s = Int(loc.offset) - window.range.lowerBound
                                try opener.open(UnsafeRawBufferPointer(rebasing: all[s..<s + Int(loc.length)]), id: id, location: loc, into: &plain)
                            }
                            for p in places {
                                try Self.write(plain, to: paths[p.file], at: p.offset)
                            }
                            if let progress {
                                let due = written.withLock { w -> UInt64? in
                                    w.bytes += UInt64(plain.count * places.count)
                                    guard Date().timeIntervalSince(w.reported) >= 1 else { return nil }
                                    w.reported = Date()
                                    return w.bytes
                                }
                                if let due { progress(due, total) }
                            }
                        } catch {
                            failures.withLock { f in for p in places { f[p.file] = "\(error)" } }
                        }
                    }
                }
            }
        }
        for (i, reason) in failures.current { report.failed[files[i].path] = reason }

        // Metadata: files, then symlinks, then directories deepest first.
        for n in files {
            try applyMetadata(n, at: target + "/" + n.path, chown: isRoot)
        }
        for n in selected where n.kind == .symlink {
            let p = target + "/" + n.path
            try ensureParent(of: n.path, in: target)
            guard symlink(n.linkTarget, p) == 0 else {
                report.failed[n.path] = "cannot create symlink: \(FS.errorText())"
                continue
            }
            if isRoot { lchown(p, n.uid, n.gid) }
            setTimes(p, n)
            report.symlinks += 1
        }
        for n in selected.filter({ $0.kind == .directory }).sorted(by: { $0.path.count > $1.path.count }) {
            try applyMetadata(n, at: target + "/" + n.path, chown: isRoot)
        }
        return report
    }

    private func prepareTarget(_ target: String) throws {
        if let st = FS.lstat(target) {
            guard FS.isDirectory(st) else {
                throw FS.Error(kind: .usage, message: "restore target \(target) exists and is not a directory", hint: "choose an empty or new directory")
            }
            guard (try FS.listDirectory(target)).isEmpty else {
                throw FS.Error(kind: .usage, message: "restore target \(target) is not empty", hint: "choose an empty or new directory")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            } catch {
                throw FS.Error(kind: .usage, message: "cannot create restore target \(target): \(error.localizedDescription)", hint: nil)
            }
        }
    }

    /// With `--path`, parents of the selected subtree are not in the selection; create them.
    private func ensureParent(of relative: String, in target: String) throws {
        var parts = relative.split(separator: "/").dropLast()
        var p = target
        while !parts.isEmpty {
            p += "/" + parts.removeFirst()
            if let st = FS.lstat(p) {
                guard FS.isDirectory(st) else {
                    throw FS.Error(kind: .failed, message: "\(p) is not a directory; refusing to restore through it", hint: nil)
                }
            } else if mkdir(p, 0o755) != 0 && errno != EEXIST {
                throw FS.Error(kind: .failed, message: "cannot create \(p): \(FS.errorText())", hint: nil)
            }
        }
    }

    private static func write(_ data: [UInt8], to path: String, at offset: Int) throws {
        let fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw FS.Error(kind: .failed, message: "cannot open \(path): \(FS.errorText())", hint: nil) }
        defer { close(fd) }
        try data.withUnsafeBytes { buf in
            var done = 0
            while done < buf.count {
                let n = pwrite(fd, buf.baseAddress! + done, buf.count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FS.Error(kind: .failed, message: "cannot write \(path): \(FS.errorText())", hint: nil)
                }
                done += n
            }
        }
    }

    private func applyMetadata(_ n: TreeNode, at path: String, chown: Bool) throws {
        if chown { lchown(path, n.uid, n.gid) }
        if chmod(path, mode_t(n.mode)) != 0 {
            throw FS.Error(kind: .failed, message: "cannot set mode of \(path): \(FS.errorText())", hint: nil)
        }
        setTimes(path, n)
    }

    private func setTimes(_ path: String, _ n: TreeNode) {
        var times = [timespec(tv_sec: Int(n.mtimeSeconds), tv_nsec: Int(n.mtimeNanoseconds)),
                     timespec(tv_sec: Int(n.mtimeSeconds), tv_nsec: Int(n.mtimeNanoseconds))]
        utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
    }
}
