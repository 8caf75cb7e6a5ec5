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
        index: RepositoryIndex
    ) throws -> (node: TreeNode, reused: Int, stored: Int) {
        let writer = try BlobWriter(repository: temp.repository, index: index, settings: .init(policy: temp.policy.backup, uploaders: 1))
        let stream = PagedStream(repository: temp.repository, writer: writer, groupBytes: 4 * page)
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
        let (chunks, slices, digests) = try stream.finish()
        _ = try writer.finish()
        var node = TreeNode(
            path: path, kind: .file, mode: 0o600, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
            size: UInt64(bytes.count), device: 0, inode: 0, flags: .paged, chunks: chunks)
        node.slices = slices
        node.pageDigests = digests
        let encoded = TreeCodec.encode([node])
        #expect(Array(encoded.prefix(4)) == Array("TTR3".utf8))
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
        let reopened = try temp.reopen()
        let all = try reopened.loadIndex()
        let target = temp.directory.sub("restore").path
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let dir = TreeNode(
            path: "pgdata", kind: .directory, mode: 0o700, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
            size: 0, device: 0, inode: 0)
        let dirs = ["pgdata/base", "pgdata/base/5"].map { p in
            var d = dir; d.pathBytes = Array(p.utf8); return d
        }
        let report = try TreeRestorer(repository: reopened, index: all, sync: false).restore(nodes: [dir] + dirs + [second.node], to: target)
        #expect(report.failed.isEmpty, "\(report.failed)")
        #expect(FileManager.default.contents(atPath: target + "/pgdata/base/5/16384") == Data(v2))
        var read: [UInt8] = []
        try TreeReader(repository: reopened, index: all).forEach([second.node]) { _, content in
            while try content!.next({ read += $0 }) {}
        }
        #expect(read == v2)
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
