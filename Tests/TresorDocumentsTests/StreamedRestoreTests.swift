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
        flush: (@Sendable (_ fd: Int32, _ real: @Sendable (Int32) -> Int32) -> Int32)? = nil,
        configure: (TreeRestorer) -> Void = { _ in }
    ) throws -> TreeRestorer.Report {
        let index = try repo.loadIndex()
        let r = TreeRestorer(repository: repo, index: index)
        r.batchFiles = batchFiles
        configure(r)
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
        // Batches of 4: the first 36 files are gathered before the 40th node is read; the ninth
        // batch may still be written and the eighth synced and named beside the walk, so the
        // first 28 or 32 have their names.
        #expect((28...32).contains(namedWhenLastPulled.current), "named: \(namedWhenLastPulled.current)")
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
    private struct Seen: Sendable, Equatable {
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
        // No writer thread outlives the failed restore: nothing changes in the target after it.
        usleep(200_000)
        #expect(Self.look(target + "/docs") == s, "the target changed after the restore returned")
    }

    // MARK: - Large files written with O_DIRECT

    /// `count` bytes that do not compress (xorshift64*), the same for the same `seed`.
    private static func noise(_ count: Int, seed: UInt64) -> Data {
        var x = seed | 1
        var out = [UInt8](repeating: 0, count: count)
        for i in stride(from: 0, to: count, by: 8) {
            x ^= x >> 12
            x ^= x << 25
            x ^= x >> 27
            let v = x &* 0x2545_F491_4F6C_DD1D
            for k in 0..<min(8, count - i) { out[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        }
        return Data(out)
    }

    private func putNoise(_ path: String, _ count: Int, seed: UInt64) throws -> Data {
        let data = Self.noise(count, seed: seed)
        try data.write(to: URL(fileURLWithPath: docs + "/" + path))
        var t = [timespec(tv_sec: 1_600_000_000, tv_nsec: 5), timespec(tv_sec: 1_600_000_000, tv_nsec: 5)]
        #expect(chmod(docs + "/" + path, 0o604) == 0 && utimensat(AT_FDCWD, docs + "/" + path, &t, 0) == 0)
        return data
    }

    /// Flips a byte inside the middle chunk of file `path` of snapshot `m`, in its pack, so that
    /// chunk no longer opens.
    private func damageMiddleChunk(of path: String, in m: SnapshotManifest) throws {
        let index = try repo.loadIndex()
        let file = try #require(try repo.loadTree(m, index: index).first { $0.displayPath == path })
        let loc = try #require(index.location(of: file.chunks[file.chunks.count / 2]))
        let fd = open(dir.sub("store").path + "/" + repo.layout.pack(loc.pack), O_RDWR)
        try #require(fd >= 0)
        defer { close(fd) }
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, off_t(loc.offset) + 40) == 1)
        byte ^= 0xFF
        #expect(pwrite(fd, &byte, 1, off_t(loc.offset) + 40) == 1)
    }

    /// Direct writes from 64 KiB on, 16 KiB per write (the bench's chunks are 4-64 KiB, its
    /// packs 1 MiB, so large files span several packs and chunks straddle the buffer).
    private static func smallDirect(_ r: TreeRestorer) {
        r.directWriteMinBytes = 65536
        r.directWriteBytes = 16384
    }

    /// A restore with ``smallDirect(_:)``'s settings, and the restorer, to read its figures after.
    private func restoreDirect(_ m: SnapshotManifest, batchFiles: Int, to target: String) throws -> (TreeRestorer.Report, TreeRestorer?) {
        var restorer: TreeRestorer?
        let report = try restore(
            m, batchFiles: batchFiles, to: target,
            configure: { r in
                Self.smallDirect(r)
                restorer = r
            })
        return (report, restorer)
    }

    @Test func largeFilesWrittenPastThePageCacheAreByteForByteWhateverTheirSizeAgainstTheBlock() throws {
        // At the threshold (a multiple of the block), one byte under and over it, a block and a
        // bit, several packs with an unaligned end, and small files beside them.
        let sizes = [65536, 65535, 65537, 3 * 4096 + 17, 3 * (1 << 20) + 4097, 1_000_003]
        var expected: [String: Data] = [:]
        for (i, size) in sizes.enumerated() { expected["n\(i).bin"] = try putNoise("n\(i).bin", size, seed: UInt64(i)) }
        for i in 0..<5 { try put("t\(i).txt", String(repeating: "text \(i) ", count: 100 * i + 1)) }
        let m = try backup()
        let target = dir.sub("restore").path
        let (report, restorer) = try restoreDirect(m, batchFiles: 3, to: target)
        #expect(report.failed.isEmpty && report.incomplete.isEmpty && report.files == 11, "\(report.failed)")
        for (name, data) in expected {
            #expect(FileManager.default.contents(atPath: target + "/docs/" + name) == data, "\(name) differs")
            var st = stat()
            #expect(lstat(target + "/docs/" + name, &st) == 0)
            #expect(st.st_mode & 0o7777 == 0o604 && st.st_mtim.tv_sec == 1_600_000_000 && st.st_mtim.tv_nsec == 5, "\(name)")
        }
        for i in 0..<5 {
            let text = String(repeating: "text \(i) ", count: 100 * i + 1)
            #expect(try String(contentsOfFile: target + "/docs/t\(i).txt", encoding: .utf8) == text)
        }
        let written = restorer?.directBytesWritten ?? 0
        // Most of the five files at or over the threshold went direct, in whole blocks.
        let eligibleSizes: [Int] = [65536, 65537, 3 * (1 << 20) + 4097, 1_000_003]
        let eligible = UInt64(eligibleSizes.reduce(0, +))
        #expect(written % 4096 == 0, "whole blocks: \(written)")
        #expect(written > eligible / 2 && written <= eligible, "direct bytes: \(written) of \(eligible)")
        let left = try FileManager.default.contentsOfDirectory(atPath: target + "/docs").filter { $0.hasPrefix(".tresor-partial") }
        #expect(left.isEmpty, "no temporary name left: \(left)")
    }

    @Test func aFileAtTheThresholdGoesDirectWholeAndOneUnderItThroughThePageCache() throws {
        let at = try putNoise("at.bin", 65536, seed: 7)
        let under = try putNoise("under.bin", 65535, seed: 8)
        let over = try putNoise("over.bin", 65537, seed: 9)
        let (_, _, nodes) = try bench.backup()
        let index = try repo.loadIndex()
        for (name, data, direct) in [("at.bin", at, 65536), ("under.bin", under, 0), ("over.bin", over, 65536)] {
            let r = TreeRestorer(repository: repo, index: index)
            Self.smallDirect(r)
            let target = dir.sub("restore-\(name)").path
            let report = try r.restore(nodes: TreeRestorer.select(nodes, subpath: "docs/" + name), to: target)
            #expect(report.failed.isEmpty && report.files == 1)
            #expect(FileManager.default.contents(atPath: target + "/docs/" + name) == data, "\(name) differs")
            // One file, in one pack, from offset 0: every whole block direct, the last byte of
            // over.bin through the page cache.
            #expect(r.directBytesWritten == UInt64(direct), "\(name): \(r.directBytesWritten) bytes direct")
        }
    }

    @Test func aRestoreWithoutSyncWritesNothingPastThePageCache() throws {
        // A drill's scratch copy (`sync: false`) is read back at once; direct writes would send
        // those reads to the disk.
        let big = try putNoise("big.bin", 200_000, seed: 11)
        let (_, _, nodes) = try bench.backup()
        let r = TreeRestorer(repository: repo, index: try repo.loadIndex(), sync: false)
        Self.smallDirect(r)
        let target = dir.sub("restore-nosync").path
        let report = try r.restore(nodes: TreeRestorer.select(nodes, subpath: "docs/big.bin"), to: target)
        #expect(report.failed.isEmpty && report.files == 1)
        #expect(FileManager.default.contents(atPath: target + "/docs/big.bin") == big)
        #expect(r.directBytesWritten == 0, "\(r.directBytesWritten) bytes direct")
    }

    @Test func noLargeFileIsNamedBeforeAFlushThatBeganAfterItsDirectWritesReturned() throws {
        var expected: [Int: Data] = [:]
        for i in 0..<6 { expected[i] = try putNoise(String(format: "f%02d.bin", i), 200_000 + 4099 * i, seed: UInt64(100 + i)) }
        let m = try backup()
        let target = dir.sub("restore").path
        let seen = Locked<[(named: Set<String>, partial: [String: Data])]>([])
        let report = try restore(
            m, batchFiles: 2, to: target,
            flush: { fd, real in
                let d = target + "/docs"
                var named = Set<String>(), partial: [String: Data] = [:]
                for name in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [] {
                    if name.hasPrefix(".tresor-partial-") {
                        partial[name] = FileManager.default.contents(atPath: d + "/" + name) ?? Data()
                    } else {
                        named.insert(name)
                    }
                }
                seen.withLock { $0.append((named, partial)) }
                return real(fd)
            }, configure: Self.smallDirect)
        #expect(report.failed.isEmpty && report.files == 6)
        let flushes = seen.current
        #expect(flushes.count == 4, "a flush per batch of 2, then the last")
        for (k, s) in flushes.prefix(3).enumerated() {
            #expect(s.named == Set((0..<2 * k).map { String(format: "f%02d.bin", $0) }), "flush \(k + 1): \(s.named.sorted())")
            for i in 2 * k..<2 * k + 2 {
                #expect(s.partial[".tresor-partial-\(i)"] == expected[i], "flush \(k + 1): file \(i) complete before it")
            }
        }
    }

    @Test func aChunkThatCannotBeOpenedFailsOnlyItsFileWhileTheBatchesAroundItAreWrittenBesideIt() throws {
        // Six files of ~300 KB in the bench's 1 MiB packs: neighbouring files share a pack, and
        // with one file per batch each shared pack is taken up by two batches at once. (Odd
        // seeds: `noise` makes every seed odd, so 2k and 2k + 1 would give the same bytes.)
        var expected: [Int: Data] = [:]
        for i in 0..<6 { expected[i] = try putNoise(String(format: "f%02d.bin", i), 300_000 + 4099 * i, seed: UInt64(301 + 2 * i)) }
        let m = try backup()
        try damageMiddleChunk(of: "docs/f03.bin", in: m)
        let target = dir.sub("restore").path
        let report = try restore(m, batchFiles: 1, to: target, configure: Self.smallDirect)
        #expect(report.failed.keys.sorted() == ["docs/f03.bin"], "reported: \(report.failed)")
        #expect(report.files == 5)
        for i in [0, 1, 2, 4, 5] {
            #expect(FileManager.default.contents(atPath: target + String(format: "/docs/f%02d.bin", i)) == expected[i], "file \(i)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: target + "/docs").sorted()
        #expect(names == ["f00.bin", "f01.bin", "f02.bin", "f04.bin", "f05.bin"], "nothing under f03's name nor a temporary one: \(names)")
    }

    @Test func aLargeFileWhoseChunkCannotBeOpenedMidwayIsReportedAndLeavesNoName() throws {
        let good = try putNoise("good.bin", 2 * (1 << 20) + 5, seed: 1)
        _ = try putNoise("bad.bin", 3 * (1 << 20) + 3, seed: 2)
        let m = try backup()
        // After direct writes of its first chunks, the rest of bad.bin cannot be opened.
        try damageMiddleChunk(of: "docs/bad.bin", in: m)
        let target = dir.sub("restore").path
        let (report, restorer) = try restoreDirect(m, batchFiles: 8, to: target)
        #expect(report.failed["docs/bad.bin"] != nil, "reported: \(report.failed)")
        #expect(report.failed.count == 1 && report.files == 1)
        #expect(FileManager.default.contents(atPath: target + "/docs/good.bin") == good)
        let names = try FileManager.default.contentsOfDirectory(atPath: target + "/docs")
        #expect(names == ["good.bin"], "nothing under bad.bin's name nor a temporary one: \(names)")
        #expect((restorer?.directBytesWritten ?? 0) > 0, "the direct path was taken")
    }
}
