import Testing
import TresorCore
import TresorRepository

@Suite struct TreeFormatTests {
    private func id(_ b: UInt8) -> ObjectID { ObjectID([UInt8](repeating: b, count: 32)) }

    @Test func aTreeWrittenBeforeTTR2IsStillRead() throws {
        // A TTR1 stream written by hand from the format description: one file node.
        var w = ByteWriter()
        w.raw(Array("TTR1".utf8))
        w.u8(1)  // file
        w.data(Array("docs/a.txt".utf8))
        w.varint(UInt64(0o644))
        w.svarint(1_700_000_000)
        w.varint(UInt64(5))
        w.varint(UInt64(1000))
        w.varint(UInt64(1000))
        w.varint(UInt64(11))
        w.varint(UInt64(7))
        w.varint(UInt64(8))
        w.u8(0)
        w.data([UInt8]())
        w.varint(1)
        w.id(id(3))
        let nodes = try TreeCodec.decode(w.bytes, name: "old tree")
        #expect(nodes.count == 1)
        #expect(nodes[0].pathBytes == Array("docs/a.txt".utf8))
        #expect(nodes[0].size == 11 && nodes[0].inode == 8 && nodes[0].chunks == [id(3)])
        #expect(nodes[0].ctimeSeconds == 0 && nodes[0].xattrs.isEmpty && !nodes[0].flags.contains(.sparse))
    }

    @Test func namesLinkTargetsAttributesAndHolesSurviveTheEncoding() throws {
        var f = TreeNode(
            pathBytes: Array("docs/caf".utf8) + [0xE9], kind: .file, mode: 0o640, mtimeSeconds: 3,
            mtimeNanoseconds: 4, uid: 1, gid: 2, size: 1 << 30, device: 5, inode: 6,
            flags: .sparse, chunks: [id(1)])
        f.ctimeSeconds = 9
        f.ctimeNanoseconds = 10
        f.xattrs = [.init(name: Array("user.x".utf8), value: [0, 0xFF])]
        f.extents = [.init(offset: 4096, length: 100)]
        var l = TreeNode(
            pathBytes: [0x64, 0xFF], kind: .symlink, mode: 0o777, mtimeSeconds: 0, mtimeNanoseconds: 0,
            uid: 0, gid: 0, size: 2, device: 0, inode: 0)
        l.linkTargetBytes = [0xC3, 0x28]
        var d = TreeNode(
            path: "docs/null", kind: .characterDevice, mode: 0o600, mtimeSeconds: 0, mtimeNanoseconds: 0,
            uid: 0, gid: 0, size: 0, device: 0, inode: 0)
        d.rdev = 259
        let bytes = TreeCodec.encode([f, l, d])
        #expect(Array(bytes.prefix(4)) == Array("TTR2".utf8))
        #expect(try TreeCodec.decode(bytes, name: "t") == [f, l, d])
        #expect(f.displayPath == "docs/caf\\xe9")
    }

    @Test func anExtentOutsideItsFileIsRefused() {
        var f = TreeNode(
            path: "docs/s", kind: .file, mode: 0, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
            size: 100, device: 0, inode: 0, flags: .sparse)
        f.extents = [.init(offset: 90, length: 20)]
        #expect(throws: RepositoryError.self) { try TreeCodec.decode(TreeCodec.encode([f]), name: "t") }
    }

    @Test func aFilteredDecodeStepsOverEveryFieldOfTheNodesItLeavesOut() throws {
        // Nodes with attributes, extents, link targets and chunks between the ones kept: a
        // miscounted field while stepping over would shift every later node.
        var nodes: [TreeNode] = []
        for i in 0..<6 {
            var n = TreeNode(
                pathBytes: Array("docs/f\(i)".utf8), kind: i % 3 == 1 ? .symlink : .file, mode: 0o600 + UInt32(i),
                mtimeSeconds: -Int64(i) * 1000, mtimeNanoseconds: 7, uid: 300, gid: 301, size: 1 << 20, device: 9,
                inode: UInt64(i), flags: i % 2 == 0 ? .sparse : [], chunks: (0..<i).map { id(UInt8($0)) })
            n.ctimeSeconds = 1 << 40
            n.ctimeNanoseconds = 999_999_999
            n.rdev = 1 << 33
            if n.kind == .symlink { n.linkTargetBytes = Array("../target-\(i)".utf8) }
            n.xattrs = (0..<i).map { .init(name: Array("user.k\($0)".utf8), value: [UInt8](repeating: 0xAB, count: $0 * 200)) }
            if n.flags.contains(.sparse) { n.extents = [.init(offset: 0, length: 10), .init(offset: 4096, length: 300)] }
            nodes.append(n)
        }
        let bytes = TreeCodec.encode(nodes)
        let kept = try TreeCodec.decode(bytes, name: "t") { _, path in path.last.map { $0 == 0x31 || $0 == 0x34 } ?? false }
        #expect(kept == [nodes[1], nodes[4]])
        #expect(
            try TreeCodec.decode(bytes, name: "t") { kind, _ in kind == .symlink }.map(\.pathBytes)
                == [Array("docs/f1".utf8), Array("docs/f4".utf8)])
        // A tree cut inside a node that is stepped over is still refused.
        #expect(throws: RepositoryError.self) {
            try TreeCodec.decode(Array(bytes.dropLast(40)), name: "t") { _, _ in false }
        }
    }

    @Test func aFilteredDecodeStepsOverAPagedNode() throws {
        var paged = TreeNode(
            path: "pg/base/1/16384", kind: .file, mode: 0o600, mtimeSeconds: 1, mtimeNanoseconds: 0,
            uid: 26, gid: 26, size: 3 * 8192, device: 1, inode: 2, flags: .paged, chunks: [id(1), id(2)])
        paged.pageDigests = [UInt8](repeating: 7, count: 3 * TreeNode.pageDigestBytes)
        paged.slices = [.init(chunk: 0, offset: 8192, length: 8192), .init(chunk: 1, offset: 0, length: 16384)]
        let after = TreeNode(
            path: "pg/base/1/16385", kind: .file, mode: 0o600, mtimeSeconds: 1, mtimeNanoseconds: 0,
            uid: 26, gid: 26, size: 0, device: 1, inode: 3)
        let bytes = TreeCodec.encode([paged, after])
        #expect(Array(bytes.prefix(4)) == Array("TTR3".utf8))
        #expect(try TreeCodec.decode(bytes, name: "t") == [paged, after])
        #expect(try TreeCodec.decode(bytes, name: "t") { _, path in path.last == 0x35 } == [after])
    }
}
