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

/// Restores that read the tree node by node and restore it a batch at a time.
@Suite struct StreamedRestoreTests {
    let bench: Bench
    var dir: TempDirectory { bench.dir }
    var repo: TenantRepository { bench.repo }
    var docs: String { bench.docs }
    var policy: Policy.Backup { bench.policy }

    init() throws { bench = try Bench() }

    private func backup() throws -> SnapshotManifest {
        let b = try DocumentBackup(repository: repo, index: try repo.loadIndex(), policy: policy, clock: SystemClock())
        return try b.run(roots: [.init(path: docs, label: "docs")], parentID: nil, parentNodes: []).1
    }

    /// A restorer over the snapshot's streamed tree that calls `pulled` with each node it is given.
    private func restore(
        _ m: SnapshotManifest, batchFiles: Int, to target: String,
        pulled: @escaping (TreeNode) -> Void = { _ in }
    ) throws -> TreeRestorer.Report {
        let index = try repo.loadIndex()
        let r = TreeRestorer(repository: repo, index: index)
        r.batchFiles = batchFiles
        var walks = 0
        return try r.restore(
            passes: {
                walks += 1
                let stream = try TreeNodeStream(repository: repo, index: index, manifest: m)
                let counting = walks == 2
                return {
                    let n = try stream.next()
                    if counting, let n { pulled(n) }
                    return n
                }
            }, to: target)
    }

    private func put(_ path: String, _ text: String, mode: mode_t = 0o640, mtime: Int = 1_600_000_000) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: docs + "/" + path))
        #expect(chmod(docs + "/" + path, mode) == 0)
        var t = [timespec(tv_sec: mtime, tv_nsec: 123_456_789), timespec(tv_sec: mtime, tv_nsec: 123_456_789)]
        #expect(utimensat(AT_FDCWD, docs + "/" + path, &t, 0) == 0)
    }

    @Test func earlierFilesHaveTheirNamesBeforeTheLastNodeIsReadSoTheTreeIsNeverHeldWhole() throws {
        for i in 0..<40 { try put(String(format: "f%02d.txt", i), "file \(i)") }
        let m = try backup()
        let target = dir.sub("restore").path
        let namedWhenLastPulled = Locked(-1)
        let report = try restore(m, batchFiles: 4, to: target) { n in
            guard n.displayPath == "docs/f39.txt" else { return }
            let named = ((try? FileManager.default.contentsOfDirectory(atPath: target + "/docs")) ?? []).filter { !$0.hasPrefix(".") }
            namedWhenLastPulled.withLock { $0 = named.count }
        }
        #expect(report.failed.isEmpty && report.incomplete.isEmpty && report.files == 40)
        // Batches of 4: the first 36 files are restored and named before the 40th node is read.
        #expect(namedWhenLastPulled.current == 36)
        for i in [0, 17, 39] {
            let name = String(format: "f%02d.txt", i)
            #expect(try String(contentsOfFile: target + "/docs/" + name, encoding: .utf8) == "file \(i)")
            var st = stat()
            #expect(lstat(target + "/docs/" + name, &st) == 0)
            #expect(st.st_mode & 0o7777 == 0o640 && st.st_mtim.tv_sec == 1_600_000_000 && st.st_mtim.tv_nsec == 123_456_789)
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: target + "/docs").filter { $0.hasPrefix(".tresor-partial") }
        #expect(left.isEmpty, "no temporary name left: \(left)")
    }

    @Test func aHardLinkWhoseFirstNameWasRestoredInAnEarlierBatchStaysOneInode() throws {
        try put("a.txt", "shared")
        for i in 0..<5 { try put("b\(i).txt", "other \(i)") }
        #expect(link(docs + "/a.txt", docs + "/z.txt") == 0)
        let m = try backup()
        let target = dir.sub("restore").path
        let report = try restore(m, batchFiles: 1, to: target)
        #expect(report.failed.isEmpty && report.hardLinks == 1 && report.files == 7)
        var a = stat(), z = stat()
        #expect(lstat(target + "/docs/a.txt", &a) == 0 && lstat(target + "/docs/z.txt", &z) == 0)
        #expect(a.st_ino == z.st_ino && a.st_nlink == 2)
    }

    @Test func aFileThatCannotBeRestoredInALaterBatchIsReportedAndLeavesNoName() throws {
        try put("a.txt", "kept")
        try put("b.txt", "kept too")
        let m = try backup()
        // A file of the same name already in the target: the restore must not replace it.
        let target = dir.sub("restore").path
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let planted = Locked(false)
        let report = try restore(m, batchFiles: 1, to: target) { n in
            // Once the walk reaches b.txt, a.txt's batch is done; plant b.txt's name meanwhile.
            guard n.displayPath == "docs/b.txt" else { return }
            planted.withLock { $0 = FileManager.default.createFile(atPath: target + "/docs/b.txt", contents: Data("theirs".utf8)) }
        }
        #expect(planted.current)
        #expect(report.failed["docs/b.txt"] != nil, "reported: \(report.failed)")
        #expect(report.failed["docs/a.txt"] == nil && report.files == 1)
        #expect(try String(contentsOfFile: target + "/docs/b.txt", encoding: .utf8) == "theirs", "never replaced")
        let left = try FileManager.default.contentsOfDirectory(atPath: target + "/docs").filter { $0.hasPrefix(".tresor-partial") }
        #expect(left.isEmpty, "no temporary name left: \(left)")
    }
}
