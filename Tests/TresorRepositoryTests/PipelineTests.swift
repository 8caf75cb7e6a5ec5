import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorStore
import TresorTestSupport

@testable import TresorRepository

/// Small sizes so a few hundred KiB exercise many packs and index objects.
let smallPolicy = TestPolicy.small.backup

func openRepository(_ store: any Store, tenant: TenantID = "acme", master: MasterKey) throws -> TenantRepository {
    try TenantRepository.open(
        store: store, tenant: tenant, master: master, policy: smallPolicy,
        clock: FixedClock(Date(timeIntervalSince1970: 1_795_773_600)), create: true)
}

@Suite struct PipelineTests {
    @Test func storedBlobsComeBackFromAFreshlyLoadedIndex() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let repo = try openRepository(store, master: master)
        let writer = try BlobWriter(repository: repo, index: RepositoryIndex(), settings: .init(policy: smallPolicy, uploaders: 2))
        let hmac = HMACSHA256(key: repo.keys.chunkID)
        var rng = SeededRandom(seed: 11)
        var blobs: [ObjectID: [UInt8]] = [:]
        for i in 0..<120 {
            let data = i % 2 == 0 ? rng.text(Int(rng.next() % 60_000)) : rng.bytes(Int(rng.next() % 60_000))
            let id = hmac.mac(data)
            blobs[id] = data
            #expect(try data.withUnsafeBytes { try writer.add(id: id, type: .data, data: $0) })
        }
        // A second add of known content is dropped.
        let (firstID, firstData) = blobs.first!
        #expect(try firstData.withUnsafeBytes { try writer.add(id: firstID, type: .data, data: $0) } == false)
        let stats = try writer.finish()
        #expect(stats.newBlobs == 120)
        #expect(stats.packs > 3, "small pack target gives several packs")
        #expect(stats.indexObjects >= stats.packs / 2)

        // Nothing in memory is reused: reopen the repository and read every blob back.
        let reopened = try TenantRepository.open(
            store: store, tenant: "acme", master: master, policy: smallPolicy,
            clock: SystemClock(), create: false)
        let index = try reopened.loadIndex()
        #expect(index.blobCount == 120)
        let opener = try BlobOpener(keys: reopened.keys)
        for (id, data) in blobs {
            #expect(try reopened.readBlob(id, index: index, opener: opener) == data)
        }
        let packs = try store.list(prefix: "tenants/acme/data/")
        #expect(packs.count == stats.packs)
        for p in packs {
            // A pack's name is the SHA-256 of its content.
            #expect(SHA256.hash(try store.get(p.key)).hex == p.key.split(separator: "/").last.map(String.init))
        }
    }

    @Test func aBlobsOwnLevelDecidesHowItIsCompressedAndItReadsBack() throws {
        // The same 64 KiB, once at the policy's level 3 and once at 19 (different ids, so both
        // are stored): zstd -19 finds the repeats 3 misses in this text, so its pack is smaller.
        var rng = SeededRandom(seed: 12)
        let line = rng.text(3000)
        let data = Array((0..<30).flatMap { i in line.map { $0 &+ UInt8(i % 2) } }.prefix(64 << 10))
        var sizes: [Int] = []
        for level in [nil, 19] {
            let dir = TempDirectory()
            let store = try LocalStore(root: dir.url)
            let master = MasterKey.generate()
            let repo = try openRepository(store, master: master)
            let writer = try BlobWriter(repository: repo, index: RepositoryIndex(), settings: .init(policy: smallPolicy, uploaders: 1))
            let id = HMACSHA256(key: repo.keys.chunkID).mac(data)
            #expect(try data.withUnsafeBytes { try writer.add(id: id, type: .data, data: $0, compression: level.map { ZstdSetting(level: $0) }) })
            let stats = try writer.finish()
            sizes.append(Int(stats.packBytes))
            let index = try repo.loadIndex()
            #expect(try repo.readBlob(id, index: index, opener: try BlobOpener(keys: repo.keys)) == data)
            let frame = try ZstdCompressor(level: level ?? 3).compress(data)
            #expect(index.location(of: id)?.length == UInt32(frame.count + AESGCM.overhead))
        }
        #expect(sizes[1] < sizes[0])
    }

    @Test func anotherTenantsMasterKeyOrNameOpensNothing() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let a = try openRepository(store, tenant: "acme", master: master)
        let b = try openRepository(store, tenant: "globex", master: master)
        #expect(a.keys.encryption != b.keys.encryption)
        let e = #expect(throws: RepositoryError.self) {
            try TenantRepository.open(
                store: store, tenant: "acme", master: MasterKey.generate(), policy: smallPolicy,
                clock: SystemClock(), create: false)
        }
        #expect(e?.message.contains("wrong master key") == true)
        // Every key of each tenant lives under its own prefix.
        let keys = try store.list(prefix: "").map(\.key)
        #expect(keys.allSatisfy { $0.hasPrefix("tenants/acme/") || $0.hasPrefix("tenants/globex/") })
    }

    @Test func chunkIDsAreKeyedPerTenant() throws {
        let a = TenantKeys(dataKey: SecureRandom.bytes(32)), b = TenantKeys(dataKey: SecureRandom.bytes(32))
        let data = Array("the same document".utf8)
        #expect(HMACSHA256(key: a.chunkID).mac(data) != HMACSHA256(key: b.chunkID).mac(data))
        #expect(HMACSHA256(key: a.chunkID).mac(data) != SHA256.hash(data))
    }
}
