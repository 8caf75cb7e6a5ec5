import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorRepository
import TresorTestSupport

@Suite struct PagedStreamTests {
    static let page = PagedStream.pageSize

    /// Streams `bytes` as one paged file (in uneven pieces, as a tar stream hands them over) and
    /// returns its tree node after an encode/decode round trip.
    static func store(
        _ bytes: [UInt8], path: String, previous: PagedPrevious?, temp: TemporaryRepository,
        index: RepositoryIndex, maxDeltaBytes: Int = 0
    ) throws -> (node: TreeNode, reused: Int, stored: Int) {
        let writer = try BlobWriter(repository: temp.repository, index: index, settings: .init(policy: temp.policy.backup, uploaders: 1))
        let stream = try PagedStream(
            repository: temp.repository, writer: writer, groupBytes: 4 * page,
            bases: try BaseChunkCache(repository: temp.repository, index: index), maxDeltaBytes: maxDeltaBytes)
        stream.begin(previous: previous)
        var off = 0, piece = 1000
        try bytes.withUnsafeBytes { all in
            while off < all.count {
                let n = min(piece, all.count - off)
                try stream.append(UnsafeRawBufferPointer(rebasing: all[off..<off + n]))
                off += n
                piece = piece * 3 % 20011 + 1
            }
        }
        let (chunks, slices, digests, deltas) = try stream.finish()
        _ = try writer.finish()
        var node = TreeNode(
            path: path, kind: .file, mode: 0o600, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
            size: UInt64(bytes.count), device: 0, inode: 0, flags: deltas.isEmpty ? .paged : [.paged, .pageDeltas], chunks: chunks)
        node.slices = slices
        node.pageDigests = digests
        node.pageDeltas = deltas
        let encoded = TreeCodec.encode([node])
        // Trees without deltas keep the format earlier builds read.
        #expect(Array(encoded.prefix(4)) == Array((deltas.isEmpty ? "TTR3" : "TTR4").utf8))
        return (try #require(try TreeCodec.decode(encoded, name: "tree").first), stream.reusedPages, stream.storedPages)
    }

    @Test func changedPagesAloneAreStoredAndTheFileComesBackFromOldAndNewChunks() throws {
        let temp = try TemporaryRepository(backing: .localDirectory)
        var rng = SeededRandom(seed: 11)
        let v1 = rng.bytes(40 * Self.page)
        let first = try Self.store(v1, path: "pgdata/base/5/16384", previous: nil, temp: temp, index: RepositoryIndex())
        // Without a previous version: the fixed 4-page pieces of the whole file, each named by
        // its page-group id, the MAC (page-group key) of its pages' chunk-id MACs in order.
        let pageMAC = HMACSHA256(key: temp.repository.keys.chunkID)
        let groupMAC = HMACSHA256(key: temp.repository.keys.pageGroupID)
        let fixed = stride(from: 0, to: v1.count, by: 4 * Self.page).map { start in
            groupMAC.mac((0..<4).flatMap { p in pageMAC.mac(Array(v1[start + p * Self.page..<start + (p + 1) * Self.page])).bytes })
        }
        #expect(first.node.chunks == fixed)
        #expect(first.reused == 0 && first.stored == 40)

        // Pages 3 and 17 change; one page and a short tail are appended.
        var v2 = v1
        for p in [3, 17] { v2[p * Self.page + 100] ^= 0x5A }
        v2 += rng.bytes(Self.page + 100)
        let index = try temp.repository.loadIndex()
        let packsBefore = try temp.store.list(prefix: "tenants/acme/data/").count
        let previous = try #require(PagedPrevious(node: first.node, index: index))
        let second = try Self.store(v2, path: "pgdata/base/5/16384", previous: previous, temp: temp, index: index)
        #expect(second.reused == 38 && second.stored == 4)
        // The four stored pages (two changed, one new, the short tail) share one new chunk.
        let newChunks = Set(second.node.chunks).subtracting(fixed)
        #expect(newChunks.count == 1)
        #expect(try temp.store.list(prefix: "tenants/acme/data/").count > packsBefore)

        // Restored from slices of both backups' chunks, byte for byte; and read in order.
        #expect(try Self.restoreAndRead(second.node, temp: temp, name: "restore") == v2)
    }

    /// The file `node` restores to (with ``TreeRestorer``) and reads as (with ``TreeReader``,
    /// both by pieces and into a small buffer); the three must agree.
    static func restoreAndRead(_ node: TreeNode, temp: TemporaryRepository, name: String) throws -> [UInt8] {
        let reopened = try temp.reopen()
        let all = try reopened.loadIndex()
        let target = temp.directory.sub(name).path
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let dir = TreeNode(
            path: "pgdata", kind: .directory, mode: 0o700, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
            size: 0, device: 0, inode: 0)
        let dirs = ["pgdata/base", "pgdata/base/5"].map { p in
            var d = dir; d.pathBytes = Array(p.utf8); return d
        }
        let report = try TreeRestorer(repository: reopened, index: all, sync: false).restore(nodes: [dir] + dirs + [node], to: target)
        #expect(report.failed.isEmpty, "\(report.failed)")
        let restored = [UInt8](FileManager.default.contents(atPath: target + "/" + node.displayPath) ?? Data())
        var pieces: [UInt8] = []
        try TreeReader(repository: reopened, index: all).forEach([node]) { _, content in
            while try content!.next({ pieces += $0 }) {}
        }
        var pulled: [UInt8] = []
        try TreeReader(repository: reopened, index: all).forEach([node]) { _, content in
            var buf = [UInt8](repeating: 0, count: 3001)
            while true {
                let n = try buf.withUnsafeMutableBytes { try content!.read(into: $0) }
                pulled += buf[0..<n]
                if n < buf.count { break }
            }
        }
        #expect(pieces == restored && pulled == restored)
        return restored
    }

    /// Sets `count` bytes from `at` of page `p` to fresh values (as an update sets `xmax`, hint
    /// bits and the page LSN: a few bytes here and there).
    static func touch(_ bytes: inout [UInt8], page p: Int, at: Int, count: Int, rng: inout SeededRandom) {
        let fresh = rng.bytes(count)
        for k in 0..<count { bytes[p * page + at + k] = fresh[k] == bytes[p * page + at + k] ? ~fresh[k] : fresh[k] }
    }

    /// The base backup's reader thread hashes the pages and hands the MACs over with the bytes
    /// (``PagedStream/append(_:macs:)``): the stream must use them, page for page and in order
    /// (pages split across pieces and the short last page included), not hash again, and the
    /// file must come out as when the stream hashes itself.
    @Test func pageMACsGivenByTheReaderNameTheChunksAsTheStreamsOwnHashingDoes() throws {
        let temp = try TemporaryRepository(backing: .localDirectory)
        var rng = SeededRandom(seed: 13)
        let bytes = rng.bytes(9 * Self.page + 300)
        let pageMAC = HMACSHA256(key: temp.repository.keys.chunkID)
        let groupMAC = HMACSHA256(key: temp.repository.keys.pageGroupID)
        let pages = stride(from: 0, to: bytes.count, by: Self.page).map { Array(bytes[$0..<min($0 + Self.page, bytes.count)]) }
        let macs = pages.map { pageMAC.mac($0) }

        /// Streams `bytes` in uneven pieces, each with the MACs of the pages it completes,
        /// taken from `given`; returns the node's chunks and digests.
        func store(_ given: [ObjectID]) throws -> (chunks: [ObjectID], digests: [UInt8]) {
            let writer = try BlobWriter(repository: temp.repository, index: RepositoryIndex(), settings: .init(policy: temp.policy.backup, uploaders: 1))
            let stream = try PagedStream(repository: temp.repository, writer: writer, groupBytes: 4 * Self.page)
            stream.begin(previous: nil)
            var off = 0, piece = 1000, done = 0
            try bytes.withUnsafeBytes { all in
                while off < all.count {
                    let n = min(piece, all.count - off)
                    let completed = (off + n) / Self.page - done
                    try given.withUnsafeBufferPointer {
                        try stream.append(
                            UnsafeRawBufferPointer(rebasing: all[off..<off + n]), macs: UnsafeBufferPointer(rebasing: $0[done..<done + completed]))
                    }
                    done += completed
                    off += n
                    piece = piece * 3 % 20011 + 1
                }
            }
            let (chunks, _, digests, _) = try stream.finish(lastMAC: given[done])
            _ = try writer.finish()
            return (chunks, digests)
        }

        // The chunk ids computed here from the pages: 4-page groups, the last two pages and the tail.
        let expected = stride(from: 0, to: pages.count, by: 4).map { g in
            groupMAC.mac(macs[g..<min(g + 4, macs.count)].flatMap(\.bytes))
        }
        let right = try store(macs)
        #expect(right.chunks == expected)
        #expect(right.digests == macs.flatMap { Array($0.bytes.prefix(8)) })
        // A MAC the reader got wrong (here page 5's) shows in the id of the chunk holding it:
        // the stream took the given MAC, it did not hash the page again.
        var wrong = macs
        wrong[5] = macs[6]
        let odd = try store(wrong)
        #expect(odd.chunks[0] == expected[0] && odd.chunks[2] == expected[2])
        #expect(odd.chunks[1] != expected[1])
    }

    @Test func pagesChangedByAFewBytesAreStoredAsDeltasAgainstTheirWholeBaseAndRestoreExactly() throws {
        let temp = try TemporaryRepository(backing: .localDirectory)
        var rng = SeededRandom(seed: 12)
        let path = "pgdata/base/5/16385"
        let v1 = rng.bytes(40 * Self.page)
        let first = try Self.store(v1, path: path, previous: nil, temp: temp, index: RepositoryIndex(), maxDeltaBytes: 1024)
        #expect(first.node.pageDeltas.isEmpty && first.stored == 40)

        // Every even page changes by a few scattered bytes; page 5 is rewritten whole.
        var v2 = v1
        for p in stride(from: 0, to: 40, by: 2) {
            Self.touch(&v2, page: p, at: 8, count: 6, rng: &rng)
            Self.touch(&v2, page: p, at: 4000, count: 12, rng: &rng)
        }
        v2.replaceSubrange(5 * Self.page..<6 * Self.page, with: rng.bytes(Self.page))
        let index2 = try temp.repository.loadIndex()
        let second = try Self.store(
            v2, path: path, previous: PagedPrevious(node: first.node, index: index2), temp: temp, index: index2,
            maxDeltaBytes: 1024)
        #expect(second.node.pageDeltas.map(\.page) == stride(from: 0, to: 40, by: 2).map(UInt32.init))
        #expect(second.reused == 19 && second.stored == 1, "reused \(second.reused), stored \(second.stored)")
        // Each delta holds its runs, not a page: its kind, two runs of the touched bytes and their headers.
        #expect(second.node.pageDeltas.allSatisfy { $0.length == 1 + 4 + 6 + 4 + 12 }, "\(second.node.pageDeltas.map(\.length))")
        // The tree names every chunk it needs: the first backup's (the bases) and its own.
        #expect(Set(first.node.chunks).isSubset(of: Set(second.node.chunks)))
        #expect(try Self.restoreAndRead(second.node, temp: temp, name: "r2") == v2)

        // Third version: page 0 changes again, page 2 back to its first bytes, page 4 unchanged.
        var v3 = v2
        Self.touch(&v3, page: 0, at: 100, count: 3, rng: &rng)
        v3.replaceSubrange(2 * Self.page..<3 * Self.page, with: v1[2 * Self.page..<3 * Self.page])
        let index3 = try temp.repository.loadIndex()
        let third = try Self.store(
            v3, path: path, previous: PagedPrevious(node: second.node, index: index3), temp: temp, index: index3,
            maxDeltaBytes: 1024)
        let byPage = Dictionary(uniqueKeysWithValues: third.node.pageDeltas.map { ($0.page, $0) })
        // Page 0's new delta is against its whole first version (chain depth one): the slice of
        // page 0 names a chunk of the first backup, and the delta holds all three touched runs.
        #expect(first.node.chunks.contains(third.node.chunks[Int(third.node.slices[0].chunk)]))
        let runs0 = 1 + 4 + 6 + 4 + 3 + 4 + 12
        #expect(byPage[0].map { Int($0.length) } == runs0)
        #expect(byPage[2] == nil)
        // Page 4 reuses the second backup's delta as it is.
        let d4 = try #require(second.node.pageDeltas.first { $0.page == 4 })
        #expect(byPage[4].map { third.node.chunks[Int($0.chunk)] } == second.node.chunks[Int(d4.chunk)])
        #expect(try Self.restoreAndRead(third.node, temp: temp, name: "r3") == v3)
        // The second still restores as it was.
        #expect(try Self.restoreAndRead(second.node, temp: temp, name: "r2b") == v2)
    }

    @Test func aDamagedDeltaIsReportedNotApplied() throws {
        let codec = try PageDeltaCodec()
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.page, alignment: 8)
        defer { page.deallocate() }
        let bad: [UInt8] = [1, 0xF0, 0x1F, 0x20, 0x00] + [UInt8](repeating: 1, count: 32)  // offset 8176, 32 bytes
        #expect(!bad.withUnsafeBytes { codec.apply($0, to: page) })
        let truncated: [UInt8] = [1, 0x00, 0x00, 0x08]
        #expect(!truncated.withUnsafeBytes { codec.apply($0, to: page) })
        let notAFrame: [UInt8] = [2, 0x28, 0xB5, 0x2F, 0xFD, 0, 0]
        #expect(!notAFrame.withUnsafeBytes { codec.apply($0, to: page) })
        #expect(![UInt8]([9, 0, 0, 0, 0]).withUnsafeBytes { codec.apply($0, to: page) })
    }

    @Test func aPageWhoseTuplesMovedIsStoredAsZstdAgainstItsBaseAndComesBack() throws {
        // As pruning compacts a page: its second half moves 136 bytes towards its end.
        var rng = SeededRandom(seed: 13)
        let old = rng.bytes(Self.page)
        var new = old
        new.replaceSubrange(4096 + 136..<Self.page, with: old[4096..<Self.page - 136])
        new.replaceSubrange(4096..<4096 + 136, with: [UInt8](repeating: 0, count: 136))
        let codec = try PageDeltaCodec()
        var out = [UInt8](repeating: 0, count: 1024)
        let n = try #require(
            new.withUnsafeBytes { a in old.withUnsafeBytes { b in out.withUnsafeMutableBytes { codec.encode(new: a, old: b, into: $0) } } })
        // Random bytes: runs would carry the whole moved half; the frame refers to where it was.
        #expect(out[0] == 2 && n < 200, "kind \(out[0]), \(n) bytes")
        var page = old
        #expect(out[0..<n].withUnsafeBytes { d in page.withUnsafeMutableBytes { codec.apply(d, to: $0) } })
        #expect(page == new)
    }

    @Test func pageDeltasInATTR3TreeAreRefused() throws {
        var node = TreeNode(
            path: "pgdata/x", kind: .file, mode: 0o600, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
            size: 8192, device: 0, inode: 0, flags: [.paged, .pageDeltas], chunks: [ObjectID(Array(repeating: 1, count: 32))])
        node.slices = [.init(chunk: 0, offset: 0, length: 8192)]
        node.pageDigests = [UInt8](repeating: 0, count: 8)
        node.pageDeltas = [.init(page: 0, chunk: 0, offset: 0, length: 10)]
        var bytes = TreeCodec.encode([node])
        #expect(try TreeCodec.decode(bytes, name: "tree") == [node])
        bytes.replaceSubrange(0..<4, with: Array("TTR3".utf8))
        #expect(throws: RepositoryError.self) { try TreeCodec.decode(bytes, name: "tree") }
    }

    @Test func aPagedNodeInATTR2TreeIsRefused() throws {
        var node = TreeNode(
            path: "pgdata/x", kind: .file, mode: 0o600, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
            size: 0, device: 0, inode: 0, flags: .paged)
        node.slices = []
        var bytes = TreeCodec.encode([node])
        bytes.replaceSubrange(0..<4, with: Array("TTR2".utf8))
        #expect(throws: RepositoryError.self) { try TreeCodec.decode(bytes, name: "tree") }
    }
}
