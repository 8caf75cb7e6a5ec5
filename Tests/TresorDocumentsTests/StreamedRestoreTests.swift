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
        pulled: @escaping (TreeNode) -> Void = { _ in },
        flush: (@Sendable (_ fd: Int32, _ real: @Sendable (Int32) -> Int32) -> Int32)? = nil
    ) throws -> TreeRestorer.Report {
        let index = try repo.loadIndex()
        let r = TreeRestorer(repository: repo, index: index)
        r.batchFiles = batchFiles
        if let flush {
            let real = r.syncFileSystem
            r.syncFileSystem = { fd in flush(fd, real) }
        }
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
        // Batches of 4: the first 36 files are restored before the 40th node is read, and named
        // but for the ninth batch, whose flush and naming may still run beside the walk.
        #expect((32...36).contains(namedWhenLastPulled.current), "named: \(namedWhenLastPulled.current)")
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

    /// What a directory holds at one moment: the named files, and each temporary one's bytes.
    private struct Seen: Sendable {
        var named: Set<String> = []
        var partial: [String: String] = [:]
    }

    private static func look(_ dir: String) -> Seen {
        var seen = Seen()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            if name.hasPrefix(".tresor-partial-") {
                seen.partial[name] = (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? "<unreadable>"
            } else {
                seen.named.insert(name)
            }
        }
        return seen
    }

    @Test func noFileIsNamedBeforeAFlushThatBeganAfterItsContentWasWritten() throws {
        for i in 0..<12 { try put(String(format: "f%02d.txt", i), "file \(i)") }
        let m = try backup()
        let target = dir.sub("restore").path
        let seen = Locked<[Seen]>([])
        let report = try restore(
            m, batchFiles: 4, to: target,
            flush: { fd, real in
                seen.withLock { $0.append(Self.look(target + "/docs")) }
                return real(fd)
            })
        #expect(report.failed.isEmpty && report.files == 12)
        let flushes = seen.current
        // One flush per batch of 4, then the last one for names, links and directories.
        #expect(flushes.count == 4)
        for (k, s) in flushes.prefix(3).enumerated() {
            // Batch k's files: written in full under temporary names, none of them named yet;
            // only the batches before it, each synced by an earlier flush, have their names.
            let before = Set((0..<4 * k).map { String(format: "f%02d.txt", $0) })
            #expect(s.named == before, "flush \(k + 1) saw named \(s.named.sorted())")
            for i in 4 * k..<4 * k + 4 {
                #expect(s.partial[".tresor-partial-\(i)"] == "file \(i)", "flush \(k + 1): \(s.partial)")
            }
        }
        #expect(flushes.last?.named.count == 12)
    }

    @Test func aFlushThatFailsBesideTheNextBatchFailsTheRestoreAndNamesNoneOfItsFiles() throws {
        for i in 0..<12 { try put(String(format: "f%02d.txt", i), "file \(i)") }
        let m = try backup()
        let target = dir.sub("restore").path
        let calls = Locked(0)
        let error = #expect(throws: RepositoryError.self) {
            _ = try restore(
                m, batchFiles: 4, to: target,
                flush: { fd, real in
                    // The second batch's flush runs while the third batch is written: it fails.
                    guard
                        calls.withLock({
                            $0 += 1; return $0
                        }) == 2
                    else { return real(fd) }
                    errno = EIO
                    return -1
                })
        }
        #expect(error?.code == .failed, "a failed job (exit 1): \(String(describing: error))")
        #expect(error?.message.contains("cannot flush the restored data to disk") == true)
        #expect(error?.message.contains("Input/output error") == true)
        let s = Self.look(target + "/docs")
        // The first batch was synced and named; the second and third never get their names.
        #expect(s.named == Set((0..<4).map { String(format: "f%02d.txt", $0) }), "named: \(s.named.sorted())")
        #expect(calls.current == 2, "no flush after the failed one")
    }
}
