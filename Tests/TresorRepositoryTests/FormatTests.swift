import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorStore
import TresorTestSupport

@testable import TresorRepository

private let keys = TenantKeys(dataKey: Array(repeating: 7, count: 32))

private func id(_ n: UInt8) -> ObjectID { ObjectID(Array(repeating: n, count: 32)) }

@Suite struct FormatTests {
    /// Inputs that crashed the parsers under Benchmarks/fuzz.sh; each must now be a thrown error.
    @Test func fuzzFoundTreeWithHugePathLengthThrows() {
        // "TTR2", kind 2, then a path length near Int.max (crash-d4bcce40…, target tree).
        let bytes: [UInt8] = [
            0x54, 0x54, 0x52, 0x32, 0x02, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x00,
            0x00, 0x00, 0x20, 0x37,
        ]
        #expect(throws: (any Error).self) { try TreeCodec.decode(bytes, name: "fuzz") }
    }

    @Test func indexFileRoundTrips() throws {
        let file = IndexFile(packs: [
            .init(
                id: id(1), size: 12345,
                entries: [
                    PackEntry(id: id(2), type: .data, compression: .zstd, offset: 0, length: 100, rawLength: 300),
                    PackEntry(id: id(3), type: .tree, compression: .none, offset: 100, length: 50, rawLength: 22),
                ]),
            .init(id: id(4), size: 1, entries: []),
        ])
        let bytes = file.encode()
        #expect(Array(bytes.prefix(4)) == Array("TIX1".utf8))
        #expect(try IndexFile.decode(bytes, name: "i") == file)
        #expect(throws: (any Error).self) { try IndexFile.decode(Array(bytes.dropLast(3)), name: "i") }
    }

    @Test func treeRoundTrips() throws {
        let nodes = [
            TreeNode(
                path: "docs", kind: .directory, mode: 0o755, mtimeSeconds: 1, mtimeNanoseconds: 2, uid: 0, gid: 0,
                size: 0, device: 1, inode: 2),
            TreeNode(
                path: "docs/Zürich.txt", kind: .file, mode: 0o4644, mtimeSeconds: -5, mtimeNanoseconds: 999_999_999,
                uid: 1000, gid: 1000, size: 1 << 40, device: 3, inode: 4, flags: .changedDuringBackup,
                chunks: [id(9), id(10)]),
            TreeNode(
                path: "docs/l", kind: .symlink, mode: 0o777, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
                size: 3, device: 0, inode: 0, linkTarget: "../x"),
        ]
        let decoded = try TreeCodec.decode(TreeCodec.encode(nodes), name: "t")
        #expect(decoded == nodes)
    }

    @Test func manifestRoundTripsThroughASealedObject() throws {
        let m = SnapshotManifest(
            tenant: "acme", kind: .documents, time: "2026-11-27T10:00:00.000Z", hostname: "h",
            roots: [.init(path: "/srv/docs", label: "docs")], parent: nil, tree: [id(1).hex],
            stats: .init())
        let json = try JSONEncoder().encode(m)
        let sealed = try SealedObject.seal(Array(json), kind: .snapshot, keys: keys, level: 3)
        let opened = try SealedObject.open(sealed, kind: .snapshot, keys: keys, name: "s")
        #expect(try JSONDecoder().decode(SnapshotManifest.self, from: Data(opened)) == m)
        // The wrong kind, another tenant's key, or one flipped bit are all refused.
        #expect(throws: RepositoryError.self) { try SealedObject.open(sealed, kind: .index, keys: keys, name: "s") }
        let other = TenantKeys(dataKey: Array(repeating: 8, count: 32))
        #expect(throws: RepositoryError.self) { try SealedObject.open(sealed, kind: .snapshot, keys: other, name: "s") }
        for position in [0, 6, 10, sealed.count / 2, sealed.count - 1] {
            var bad = sealed
            bad[position] ^= 0x01
            #expect(throws: RepositoryError.self) { try SealedObject.open(bad, kind: .snapshot, keys: keys, name: "s") }
        }
    }

    @Test func packBuilderOutputOpensBlobByBlobAndDetectsTampering() throws {
        var rng = SeededRandom(seed: 3)
        let blobs: [[UInt8]] = [rng.text(50_000), rng.bytes(70_000), [], rng.text(10)]
        let hmac = HMACSHA256(key: keys.chunkID)
        let pool = PackBufferPool(bufferSize: PackBuilder.bufferSize(target: 1 << 20, maxBlob: 1 << 20), limit: 2)
        let builder = try PackBuilder(pool: pool, target: 1 << 20, maxBlob: 1 << 20, keys: keys, level: 3)
        var ids: [ObjectID] = []
        for b in blobs {
            let i = hmac.mac(b)
            ids.append(i)
            try b.withUnsafeBytes { try builder.add(id: i, type: .data, data: $0) }
        }
        let finished = builder.finish()
        let pack = Array(finished.bytes), entries = finished.entries
        pool.give(finished.buffer)
        #expect(entries.count == 4)
        #expect(entries[0].compression == .zstd, "text compresses")
        #expect(entries[1].compression == .none, "random bytes are stored raw")
        #expect(try PackFormat.readHeader(pack, keys: keys, name: "p") == entries)
        let opener = try BlobOpener(keys: keys)
        var out: [UInt8] = []
        for (n, e) in entries.enumerated() {
            let loc = BlobLocation(
                pack: id(0), offset: e.offset, length: e.length, rawLength: e.rawLength,
                type: e.type, compression: e.compression)
            try pack.withUnsafeBytes { try opener.open(UnsafeRawBufferPointer(rebasing: $0[loc.range]), id: ids[n], location: loc, into: &out) }
            #expect(out == blobs[n])
            // Claiming another id, or flipping a byte, fails authentication.
            #expect(throws: RepositoryError.self) {
                try pack.withUnsafeBytes { try opener.open(UnsafeRawBufferPointer(rebasing: $0[loc.range]), id: id(99), location: loc, into: &out) }
            }
            var bad = pack
            bad[Int(e.offset) + Int(e.length) / 2] ^= 0x80
            #expect(throws: RepositoryError.self) {
                try bad.withUnsafeBytes { try opener.open(UnsafeRawBufferPointer(rebasing: $0[loc.range]), id: ids[n], location: loc, into: &out) }
            }
        }
        // The builder is reusable: a second pack starts empty.
        try blobs[3].withUnsafeBytes { try builder.add(id: ids[3], type: .data, data: $0) }
        #expect(builder.finish().entries.count == 1)
    }

    @Test func keyEnvelopeOpensOnlyWithTheRightMasterKeyAndTenant() throws {
        let master = MasterKey.generate()
        let dataKey = SecureRandom.bytes(32)
        let env = try KeyEnvelope.wrap(dataKey: dataKey, tenant: "acme", master: master, created: Date(timeIntervalSince1970: 0))
        #expect(try env.unwrap(master: master, tenant: "acme", id: env.id) == dataKey)
        let wrong = #expect(throws: RepositoryError.self) { try env.unwrap(master: MasterKey.generate(), tenant: "acme", id: env.id) }
        #expect(wrong?.kind == .usage)
        var moved = env
        moved.tenant = "globex"
        #expect(throws: RepositoryError.self) { try moved.unwrap(master: master, tenant: "globex", id: env.id) }
        // Stored under another tenant's prefix or another name, it does not open either.
        #expect(throws: RepositoryError.self) { try env.unwrap(master: master, tenant: "globex", id: env.id) }
        #expect(throws: RepositoryError.self) { try env.unwrap(master: master, tenant: "acme", id: "0000000000000000") }
        #expect(!env.sealed.contains(Hex.encode(dataKey)))
    }

    @Test func tenantKeysDifferPerTenant() {
        let a = TenantKeys(dataKey: SecureRandom.bytes(32)), b = TenantKeys(dataKey: SecureRandom.bytes(32))
        #expect(a.encryption != b.encryption)
        #expect(a.chunkID != b.chunkID)
        #expect(a.encryption != a.chunkID)
        #expect(a.chunkerSeed != b.chunkerSeed)
    }
}
