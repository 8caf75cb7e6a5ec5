import Foundation
import Testing
import TresorCore
import TresorDocuments
import TresorRepository
import TresorStore
import TresorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A repository on a local store plus a documents root, backed up and restored in-process.
final class Bench: @unchecked Sendable {
    let dir = TempDirectory("tresor-fidelity")
    let repo: TenantRepository
    var docs: String { dir.sub("docs").path }
    let policy = Policy.Backup(
        compressionLevel: 3, chunkMin: 4096, chunkAvg: 16384, chunkMax: 65536,
        packTarget: 1 << 20, indexEveryPacks: 4, workers: 1, changedFileRetries: 0)

    init() throws {
        let store = try LocalStore(root: dir.sub("store"))
        repo = try TenantRepository.open(
            store: store, tenant: "acme", master: .generate(), policy: policy,
            clock: SystemClock(), create: true)
        try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
    }

    func backup(
        parent: (ObjectID, [TreeNode])? = nil, beforeOpening: ((_ relative: [UInt8]) -> Void)? = nil
    ) throws -> (id: ObjectID, manifest: SnapshotManifest, nodes: [TreeNode]) {
        let b = try DocumentBackup(repository: repo, index: try repo.loadIndex(), policy: policy, clock: SystemClock())
        b.beforeOpeningFile = beforeOpening
        let (id, m) = try b.run(roots: [.init(path: docs, label: "docs")], parentID: parent?.0, parentNodes: parent?.1 ?? [])
        return (id, m, try repo.loadTree(m, index: try repo.loadIndex()))
    }

    func restore(_ nodes: [TreeNode], hook: (@Sendable (TreeRestorer.Phase) -> Void)? = nil) throws -> (String, TreeRestorer.Report) {
        let target = dir.sub("restore-\(UUID().uuidString.prefix(6))").path
        let r = TreeRestorer(repository: repo, index: try repo.loadIndex())
        r.phaseHook = hook
        return (target, try r.restore(nodes: nodes, to: target))
    }
}

/// `path` as C bytes (any bytes, not only UTF-8).
private func withPath<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
    PosixFS.withCName(bytes, body)
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

private func write(_ path: [UInt8], _ content: [UInt8]) {
    let fd = withPath(path) { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
    precondition(fd >= 0, "cannot create test file")
    _ = content.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

private func read(_ path: [UInt8]) -> [UInt8]? {
    let fd = withPath(path) { open($0, O_RDONLY) }
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { return out }
        out += buf[0..<n]
    }
}

private func lstatBytes(_ path: [UInt8]) -> stat? {
    var st = stat()
    return withPath(path) { lstat($0, &st) } == 0 ? st : nil
}

@Suite struct FileFidelityTests {
    @Test func aNameThatIsNotUTF8IsBackedUpAndRestoredByteIdentical() throws {
        let b = try Bench()
        let name: [UInt8] = bytes("caf") + [0xE9] + bytes(".txt")
        let sub: [UInt8] = bytes("dir") + [0xFF]
        let link: [UInt8] = [0xC3, 0x28] + bytes("/target")
        write(bytes(b.docs + "/") + name, bytes("latin-1 name"))
        #expect(withPath(bytes(b.docs + "/") + sub) { mkdir($0, 0o755) } == 0)
        write(bytes(b.docs + "/") + sub + bytes("/inner.txt"), bytes("inside a non-UTF-8 directory"))
        #expect(withPath(link) { t in withPath(bytes(b.docs + "/link")) { symlink(t, $0) } } == 0)

        let snap = try b.backup()
        #expect(snap.manifest.stats.skipped.isEmpty)
        #expect(snap.manifest.stats.files == 2)
        let (target, report) = try b.restore(snap.nodes)
        #expect(report.failed.isEmpty && report.incomplete.isEmpty)
        let root = bytes(target + "/docs/")
        #expect(read(root + name) == bytes("latin-1 name"))
        #expect(read(root + sub + bytes("/inner.txt")) == bytes("inside a non-UTF-8 directory"))
        var buf = [CChar](repeating: 0, count: 256)
        let n = withPath(root + bytes("link")) { readlink($0, &buf, 256) }
        #expect(n >= 0 && buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) } == link)
    }

    @Test func aPathLongerThanPathMaxIsBackedUpAndRestored() throws {
        let b = try Bench()
        let segment = [UInt8](repeating: 0x61, count: 200)
        var fd = open(b.docs, O_RDONLY | O_DIRECTORY)
        for _ in 0..<25 {  // 25 × 201 bytes: past PATH_MAX (4096)
            #expect(withPath(segment) { mkdirat(fd, $0, 0o755) } == 0)
            let next = withPath(segment) { openat(fd, $0, O_RDONLY | O_DIRECTORY) }
            close(fd)
            fd = next
        }
        let f = withPath(bytes("deep.txt")) { openat(fd, $0, O_WRONLY | O_CREAT, 0o644) }
        _ = Array("at the bottom".utf8).withUnsafeBytes { Glibc.write(f, $0.baseAddress, $0.count) }
        close(f)
        close(fd)

        let snap = try b.backup()
        #expect(snap.manifest.stats.skipped.isEmpty)
        #expect(snap.manifest.stats.files == 1)
        let (target, report) = try b.restore(snap.nodes)
        #expect(report.failed.isEmpty && report.files == 1)
        var dfd = open(target + "/docs", O_RDONLY | O_DIRECTORY)
        for _ in 0..<25 {
            let next = withPath(segment) { openat(dfd, $0, O_RDONLY | O_DIRECTORY) }
            close(dfd)
            dfd = next
        }
        #expect(dfd >= 0)
        let rf = withPath(bytes("deep.txt")) { openat(dfd, $0, O_RDONLY) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { Glibc.read(rf, $0.baseAddress, $0.count) }
        #expect(n > 0 && Array(buf[0..<n]) == bytes("at the bottom"))
        close(rf)
        close(dfd)
    }

    @Test func aFIFOAndADeviceAreRecordedNotReadAndRestoredAsSuch() throws {
        let b = try Bench()
        #expect(mkfifo(b.docs + "/pipe", 0o640) == 0)
        #expect(mknod(b.docs + "/null", S_IFCHR | 0o600, dev_t(259)) == 0, "tests run as root")
        write(bytes(b.docs + "/plain.txt"), bytes("x"))
        // A FIFO read by a backup would block forever with no writer; the run must still end.
        let snap = try b.backup()
        #expect(snap.manifest.stats.skipped.isEmpty)
        #expect(snap.nodes.first { $0.pathBytes == Array("docs/pipe".utf8) }?.kind == .fifo)
        #expect(snap.nodes.first { $0.pathBytes == Array("docs/null".utf8) }?.kind == .characterDevice)
        let (target, report) = try b.restore(snap.nodes)
        #expect(report.failed.isEmpty && report.incomplete.isEmpty && report.specialFiles == 2)
        let pipe = lstatBytes(bytes(target + "/docs/pipe"))
        #expect(pipe.map { $0.st_mode & S_IFMT } == S_IFIFO)
        #expect(pipe.map { $0.st_mode & 0o7777 } == 0o640)
        let dev = lstatBytes(bytes(target + "/docs/null"))
        #expect(dev.map { $0.st_mode & S_IFMT } == S_IFCHR)
        #expect(dev.map { UInt64($0.st_rdev) } == UInt64(dev_t(259)))
    }

    @Test func aFIFOSwappedInAfterListingIsRecordedNotRead() throws {
        let b = try Bench()
        write(bytes(b.docs + "/report.pdf"), bytes("listed as a regular file"))
        let docs = b.docs
        // Between listing and opening, the file becomes a FIFO with no writer: a blocking open
        // or read would hang the backup for good.
        let snap = try b.backup(beforeOpening: { relative in
            guard relative == bytes("docs/report.pdf") else { return }
            unlink(docs + "/report.pdf")
            mkfifo(docs + "/report.pdf", 0o600)
        })
        let node = try #require(snap.nodes.first { $0.pathBytes == Array("docs/report.pdf".utf8) })
        #expect(node.kind == .fifo && node.chunks.isEmpty)
        #expect(snap.manifest.stats.filesRead == 0)
    }

    @Test func theStreamingReaderGivesEachFileInTreeOrderByteForByte() throws {
        let b = try Bench()
        var rng = SeededRandom(seed: 10)
        let big = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        write(bytes(b.docs + "/a.bin"), big)
        write(bytes(b.docs + "/b.txt"), bytes("small"))
        let snap = try b.backup()
        let reader = try TreeReader(repository: b.repo, index: try b.repo.loadIndex())
        var seen: [(String, [UInt8], Int)] = []
        try reader.forEach(snap.nodes) { node, content in
            guard let content else { return }
            var got: [UInt8] = [], pieces = 0
            while try content.next({
                got += $0; pieces += 1
            }) {}
            seen.append((node.displayPath, got, pieces))
        }
        #expect(seen.map(\.0) == ["docs/a.bin", "docs/b.txt"])
        #expect(seen.first?.1 == big && seen.last?.1 == bytes("small"))
        #expect((seen.first?.2 ?? 0) > 1, "a large file comes chunk by chunk, not whole")
    }

    @Test func pullingFromTheStreamingReaderIntoAnOddBufferLosesNoByteAtChunkOrHoleEdges() throws {
        let b = try Bench()
        var rng = SeededRandom(seed: 11)
        let big = (0..<2_500_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        write(bytes(b.docs + "/a.bin"), big)
        // A sparse file: a hole, data, a hole, data, a hole at the end.
        let size = 8 << 20
        var expected = [UInt8](repeating: 0, count: size)
        let fd = open(b.docs + "/b.img", O_WRONLY | O_CREAT, 0o644)
        #expect(ftruncate(fd, off_t(size)) == 0)
        for (offset, length) in [(1 << 20, 300_000), (5 << 20, 70_000)] {
            let data = (0..<length).map { _ in UInt8.random(in: 1...255, using: &rng) }
            expected.replaceSubrange(offset..<offset + length, with: data)
            _ = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        }
        close(fd)
        let snap = try b.backup()
        #expect(snap.nodes.first { $0.pathBytes == bytes("docs/b.img") }?.flags.contains(.sparse) == true)
        let reader = try TreeReader(repository: b.repo, index: try b.repo.loadIndex())
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 100_003, alignment: 1)
        defer { buffer.deallocate() }
        var got: [String: [UInt8]] = [:]
        try reader.forEach(snap.nodes) { node, content in
            guard let content else { return }
            var out: [UInt8] = []
            while true {
                let n = try content.read(into: buffer)
                out += buffer[0..<n]
                if n < buffer.count { break }
            }
            #expect(try content.read(into: buffer) == 0, "nothing after the end")
            got[node.displayPath] = out
        }
        #expect(got["docs/a.bin"] == big)
        #expect(got["docs/b.img"]?.count == size)
        #expect(got["docs/b.img"] == expected)
    }

    @Test func aHardLinkPairIsRestoredAsOneInode() throws {
        let b = try Bench()
        write(bytes(b.docs + "/a.txt"), bytes("shared content"))
        #expect(link(b.docs + "/a.txt", b.docs + "/b.txt") == 0)
        let snap = try b.backup()
        #expect(snap.manifest.stats.filesRead == 1, "the second name is not read again")
        let (target, report) = try b.restore(snap.nodes)
        #expect(report.failed.isEmpty && report.hardLinks == 1)
        let a = lstatBytes(bytes(target + "/docs/a.txt")), c = lstatBytes(bytes(target + "/docs/b.txt"))
        #expect(a != nil && a?.st_ino == c?.st_ino)
        #expect(a?.st_nlink == 2)
        #expect(read(bytes(target + "/docs/b.txt")) == bytes("shared content"))
    }

    @Test func hardLinksAcrossMoreDirectoriesThanTheHandleCacheHoldsAllReachOneInode() throws {
        let b = try Bench()
        write(bytes(b.docs + "/first.txt"), bytes("one inode"))
        for d in 0..<300 {
            try FileManager.default.createDirectory(atPath: b.docs + "/d\(d)", withIntermediateDirectories: false)
            #expect(link(b.docs + "/first.txt", b.docs + "/d\(d)/again.txt") == 0)
        }
        let snap = try b.backup()
        let (target, report) = try b.restore(snap.nodes)
        #expect(report.failed.isEmpty && report.hardLinks == 300)
        let first = try #require(lstatBytes(bytes(target + "/docs/first.txt")))
        #expect(first.st_nlink == 301)
        for d in [0, 137, 299] {
            #expect(lstatBytes(bytes(target + "/docs/d\(d)/again.txt"))?.st_ino == first.st_ino)
        }
    }

    @Test func aSparseFileIsNotStoredOrRestoredAsZeros() throws {
        let b = try Bench()
        let path = b.docs + "/sparse.img"
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        #expect(ftruncate(fd, 1 << 30) == 0)
        let data = [UInt8](repeating: 0x5A, count: 8192)
        _ = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 512 << 20) }
        close(fd)

        let snap = try b.backup()
        #expect(snap.manifest.stats.bytesRead == 8192, "only the data extent is read")
        let node = try #require(snap.nodes.first { $0.pathBytes == Array("docs/sparse.img".utf8) })
        #expect(node.flags.contains(.sparse) && node.size == 1 << 30)
        let (target, report) = try b.restore(snap.nodes)
        #expect(report.failed.isEmpty)
        let st = try #require(lstatBytes(bytes(target + "/docs/sparse.img")))
        #expect(st.st_size == 1 << 30)
        #expect(Int(st.st_blocks) * 512 < 1 << 20, "restored sparse, not 1 GiB of zeros")
        let rfd = open(target + "/docs/sparse.img", O_RDONLY)
        var back = [UInt8](repeating: 0, count: 8192 + 16)
        _ = back.withUnsafeMutableBytes { pread(rfd, $0.baseAddress, $0.count, (512 << 20) - 8) }
        close(rfd)
        #expect(back[0..<8] == [0, 0, 0, 0, 0, 0, 0, 0][...])
        #expect(Array(back[8..<8200]) == data)

        // The streaming reader gives the logical content, holes as zeros, chunk by chunk.
        let reader = try TreeReader(repository: b.repo, index: try b.repo.loadIndex())
        var total: UInt64 = 0, nonZero = 0
        try reader.forEach([node]) { _, content in
            while try content!.next({ piece in
                total += UInt64(piece.count)
                if piece.first == 0x5A { nonZero += piece.count }  // the one data chunk
            }) {}
        }
        #expect(total == 1 << 30 && nonZero == 8192)
    }

    @Test func extendedAttributesAndAnACLRoundTrip() throws {
        let b = try Bench()
        let file = b.docs + "/acl.txt"
        write(bytes(file), bytes("x"))
        let value = bytes("kept")
        func set(_ path: String, _ name: String, _ v: [UInt8]) -> Bool {
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            return fd >= 0 && PosixFS.setExtendedAttribute(fd, .init(name: bytes(name), value: v)) == nil
        }
        #expect(set(file, "user.tresor.test", value))
        // posix_acl_xattr v2: user::rw-, user:1234:r--, group::r--, mask::r--, other::---
        var acl: [UInt8] = [2, 0, 0, 0]
        func entry(_ tag: UInt16, _ perm: UInt16, _ id: UInt32) {
            acl += [UInt8(tag & 0xFF), UInt8(tag >> 8), UInt8(perm & 0xFF), UInt8(perm >> 8)]
            acl += [UInt8(id & 0xFF), UInt8((id >> 8) & 0xFF), UInt8((id >> 16) & 0xFF), UInt8(id >> 24)]
        }
        entry(0x01, 6, UInt32.max)
        entry(0x02, 4, 1234)
        entry(0x04, 4, UInt32.max)
        entry(0x10, 4, UInt32.max)
        entry(0x20, 0, UInt32.max)
        #expect(set(file, "system.posix_acl_access", acl), "ext4 with ACLs under /tmp")
        #expect(set(b.docs, "user.dir", value))

        let snap = try b.backup()
        #expect(snap.manifest.stats.skipped.isEmpty)
        let (target, report) = try b.restore(snap.nodes)
        #expect(report.failed.isEmpty && report.incomplete.isEmpty)
        func get(_ path: String, _ name: String) -> [UInt8]? {
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            guard fd >= 0, case .success(let all) = PosixFS.extendedAttributes(fd) else { return nil }
            return all.first { $0.name == bytes(name) }?.value
        }
        #expect(get(target + "/docs/acl.txt", "user.tresor.test") == value)
        #expect(get(target + "/docs/acl.txt", "system.posix_acl_access") == acl)
        #expect(get(target + "/docs", "user.dir") == value)
    }

    @Test func anUnchangedRerunWithTheParentStreamedReadsNoFileWhateverTheNamesSortLike() throws {
        let b = try Bench()
        // Siblings whose bytewise order differs from the order of whole paths ("a/x" sorts after
        // "a-b/x" as bytes, but the walk visits "a" and its contents first), a name that is not
        // UTF-8, and enough files that the tree spans several tree blobs (chunks of at most 64 KiB).
        let dirs: [[UInt8]] = [bytes("a"), bytes("a-b"), bytes("a b"), bytes("ab"), bytes("a.b"), [0x61, 0xFF], bytes("Z")]
        for d in dirs {
            let dir = bytes(b.docs + "/") + d
            #expect(withPath(dir) { mkdir($0, 0o755) } == 0)
            for i in 0..<300 { write(dir + bytes("/file-\(i)-with-a-long-name-to-make-the-tree-large.txt"), bytes("\(d) \(i)")) }
        }
        let first = try b.backup()
        #expect(first.manifest.tree.count > 1, "the test needs a tree of several blobs")
        let index = try b.repo.loadIndex()
        let stream = try TreeNodeStream(repository: b.repo, index: index, manifest: first.manifest)
        var streamed: [TreeNode] = []
        while let n = try stream.next() { streamed.append(n) }
        #expect(streamed == first.nodes, "the stream yields the tree loadTree decodes")
        #expect(stream.blobsRead == first.manifest.tree.count)

        let backup = try DocumentBackup(repository: b.repo, index: index, policy: b.policy, clock: SystemClock())
        let parent = try TreeNodeStream(repository: b.repo, index: index, manifest: first.manifest)
        let (_, second) = try backup.run(roots: [.init(path: b.docs, label: "docs")], parentID: first.id, parent: { try parent.next() })
        #expect(second.stats.files == 7 * 300)
        #expect(second.stats.filesRead == 0, "every file was found in the parent")
        #expect(second.tree == first.manifest.tree, "an unchanged tree written node by node cuts into the same tree blobs")

        // A new file that the parent lacks: the lookup must stop at "a b" (next in walk order)
        // without passing over it, though "a b/…" sorts before "a/new.txt" as whole paths.
        write(bytes(b.docs + "/a/new.txt"), bytes("new"))
        let again = try DocumentBackup(repository: b.repo, index: try b.repo.loadIndex(), policy: b.policy, clock: SystemClock())
        let parent2 = try TreeNodeStream(repository: b.repo, index: index, manifest: second)
        let (_, third) = try again.run(roots: [.init(path: b.docs, label: "docs")], parentID: nil, parent: { try parent2.next() })
        #expect(third.stats.filesRead == 1, "only the new file is read")
    }

    @Test func aChangedFileAmongManyIsTheOnlyOneReadWithAStreamedParent() throws {
        let b = try Bench()
        for i in 0..<400 { write(bytes(b.docs + "/f\(i)"), bytes("content \(i)")) }
        let first = try b.backup()
        write(bytes(b.docs + "/f399"), bytes("changed, and longer than before"))
        let index = try b.repo.loadIndex()
        let parent = try TreeNodeStream(repository: b.repo, index: index, manifest: first.manifest)
        let backup = try DocumentBackup(repository: b.repo, index: index, policy: b.policy, clock: SystemClock())
        let (_, second) = try backup.run(roots: [.init(path: b.docs, label: "docs")], parentID: first.id, parent: { try parent.next() })
        #expect(second.stats.filesRead == 1)
        let nodes = try b.repo.loadTree(second, index: try b.repo.loadIndex())
        let (target, _) = try b.restore(nodes)
        #expect(read(bytes(target + "/docs/f399")) == bytes("changed, and longer than before"))
        #expect(read(bytes(target + "/docs/f7")) == bytes("content 7"))
    }

    @Test func aChangeThatKeepsSizeAndMtimeIsSeenThroughCtime() throws {
        let b = try Bench()
        let path = b.docs + "/same.txt"
        write(bytes(path), bytes("version one"))
        var st = stat()
        lstat(path, &st)
        let first = try b.backup()
        write(bytes(path), bytes("version two"))
        var times = [st.st_mtim, st.st_mtim]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)  // same size, same mtime: only ctime moved
        let second = try b.backup(parent: (first.id, first.nodes))
        #expect(second.manifest.stats.filesRead == 1)
        let (target, _) = try b.restore(second.nodes)
        #expect(read(bytes(target + "/docs/same.txt")) == bytes("version two"))
    }

    @Test func aFailedRestoreLeavesNoZeroFilledFile() throws {
        let b = try Bench()
        var rng = SeededRandom(seed: 8)
        write(bytes(b.docs + "/lost.bin"), (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let snap = try b.backup()
        // Every pack gone: no content can be read.
        let packs = b.dir.sub("store").path + "/tenants/acme/data"
        try FileManager.default.removeItem(atPath: packs)
        try FileManager.default.createDirectory(atPath: packs, withIntermediateDirectories: true)
        let (target, report) = try b.restore(snap.nodes)
        #expect(report.failed["docs/lost.bin"] != nil)
        #expect(lstatBytes(bytes(target + "/docs/lost.bin")) == nil, "no plausible-looking file")
        let left = try FileManager.default.contentsOfDirectory(atPath: target + "/docs")
        #expect(left.isEmpty, "no partial file either: \(left)")
    }

    @Test func aSymlinkPlantedInTheTargetDuringTheRestoreIsNotFollowed() throws {
        let b = try Bench()
        try FileManager.default.createDirectory(atPath: b.docs + "/sub", withIntermediateDirectories: true)
        write(bytes(b.docs + "/sub/secret.txt"), bytes("goes only where it belongs"))
        #expect(chmod(b.docs + "/sub", 0o777) == 0)
        let snap = try b.backup()

        // A directory the attacker wants written to or re-owned, owned by another user.
        let outside = b.dir.sub("outside").path
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        #expect(chown(outside, 101, 104) == 0 && chmod(outside, 0o700) == 0)
        let planted = Locked(false)
        let (target, report) = try b.restore(snap.nodes) { phase in
            guard case .created = phase else { return }
            // The directory was created; swap it for a symlink to the outside.
            let t = planted
            let dirs = (try? FileManager.default.contentsOfDirectory(atPath: b.dir.path)) ?? []
            for d in dirs where d.hasPrefix("restore-") {
                let sub = b.dir.sub(d).path + "/docs/sub"
                if rename(sub, b.dir.sub(d).path + "/moved") == 0 && symlink(outside, sub) == 0 { t.withLock { $0 = true } }
            }
        }
        #expect(planted.current)
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "nothing written through the link")
        var st = stat()
        lstat(outside, &st)
        #expect(st.st_uid == 101 && st.st_mode & 0o7777 == 0o700, "owner and mode of the link's target untouched")
        #expect(report.failed["docs/sub/secret.txt"] != nil)
        #expect(report.incomplete["docs/sub"] != nil)
        _ = target
    }
}
