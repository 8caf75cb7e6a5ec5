import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorStore
import TresorTestSupport

@testable import TresorRepository

/// A store whose first `get` of a tenant config waits until `parties` callers have asked, so that
/// many openers all find no repository and race to create it.
final class CreationRaceStore: StoreWrapper, @unchecked Sendable {
    let base: any Store
    let parties: Int
    private let condition = NSCondition()
    private var arrived = 0

    init(_ base: any Store, parties: Int) {
        self.base = base
        self.parties = parties
    }

    func get(_ key: String, range: Range<Int>?) throws -> [UInt8] {
        if key.hasSuffix("/config") {
            condition.lock()
            if arrived < parties {
                arrived += 1
                condition.broadcast()
                while arrived < parties { condition.wait() }
                condition.unlock()
                throw StoreError.notFound(key, in: location)
            }
            condition.unlock()
        }
        return try base.get(key, range: range)
    }
}

@Suite struct KeyTests {
    /// `pg stream`, `pg setup` and `docs backup` creating one tenant's repository at once used to
    /// be able to pick different envelopes, sealing one writer's data under a key nobody used
    /// again. Eight concurrent creators, several rounds: one data key, and everyone's data reads.
    @Test func concurrentCreatorsAllUseOneDataKeyAndEveryonesDataReadsBack() throws {
        let dir = TempDirectory()
        let local = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let parties = 8
        for round in 0..<6 {
            let tenant = try TenantID("race\(round)")
            let store = CreationRaceStore(local, parties: parties)
            let keys = Locked<[[UInt8]]>([])
            let failures = Locked<[String]>([])
            runOnThreads(parties, name: "creator") { i in
                do {
                    let repo = try openRepository(store, tenant: tenant, master: master)
                    keys.withLock { $0.append(repo.keys.encryption) }
                    // Each creator writes something of its own under the key it was given.
                    let pack = IndexFile.Pack(id: SHA256.hash(Array("pack \(i)".utf8)), size: 100 + i, entries: [])
                    try repo.writeIndex(IndexFile(packs: [pack]), level: 3)
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.current.isEmpty, "\(failures.current)")
            #expect(Set(keys.current).count == 1, "round \(round): creators used \(Set(keys.current).count) data keys")
            let fresh = try openRepository(local, tenant: tenant, master: master)
            let index = try fresh.loadIndex()
            #expect(try local.list(prefix: "tenants/\(tenant)/index/").count == parties)
            #expect(index.packSizes.count == parties, "every creator's index object opens under the one key")
            #expect(try local.list(prefix: "tenants/\(tenant)/keys/").count == 1, "losing creators removed their envelopes")
        }
    }

    /// An envelope copied in from another tenant (under a name that sorts first) used to be
    /// opened with the tenant named inside it, handing tenant b tenant a's data key.
    @Test func anEnvelopeMovedFromAnotherTenantIsNeverUsed() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let a = try openRepository(store, tenant: "a", master: master)
        let b = try openRepository(store, tenant: "b", master: master)
        let aEnvelope = try #require(try store.list(prefix: "tenants/a/keys/").first)
        try store.put("tenants/b/keys/0000000000000000", try store.get(aEnvelope.key))
        let reopened = try openRepository(store, tenant: "b", master: master)
        #expect(reopened.keys.encryption == b.keys.encryption)
        #expect(reopened.keys.encryption != a.keys.encryption)
        #expect(reopened.keyProblems.count == 1)
        #expect(reopened.keyProblems.first?.contains("tenants/b/keys/0000000000000000") == true)
        #expect(reopened.keyProblems.first?.contains("moved") == true)
    }

    /// A legacy (version 1) config has no data key name: a moved envelope there must fail too,
    /// not be opened under the tenant named inside it.
    @Test func aMovedEnvelopeDoesNotOpenForAVersion1Tenant() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        _ = try openRepository(store, tenant: "a", master: master)
        let aEnvelope = try #require(try store.list(prefix: "tenants/a/keys/").first)
        let id = String(aEnvelope.key.split(separator: "/").last!)
        try store.put("tenants/b/keys/\(id)", try store.get(aEnvelope.key))
        try store.put(
            "tenants/b/config",
            Array(
                """
                {"format":"tresor-tenant","version":1,"tenant":"b","created":"2026-01-01T00:00:00.000Z",
                 "chunker":{"algorithm":"fastcdc-gear-v1","minSize":4096,"averageSize":16384,"maxSize":65536},
                 "chunkIDs":"hmac-sha256","encryption":"aes-256-gcm","compression":"zstd"}
                """.utf8))
        #expect(throws: RepositoryError.self) { try openRepository(store, tenant: "b", master: master) }
    }

    /// A version 1 config (written before configs named their key) still opens with its envelope.
    @Test func aVersion1RepositoryStillOpens() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let dataKey = SecureRandom.bytes(32)
        let envelope = try KeyEnvelope.wrap(dataKey: dataKey, tenant: "old", master: master, created: Date())
        try store.put("tenants/old/keys/\(envelope.id)", try envelope.encoded())
        try store.put(
            "tenants/old/config",
            Array(
                """
                {"format":"tresor-tenant","version":1,"tenant":"old","created":"2026-01-01T00:00:00.000Z",
                 "chunker":{"algorithm":"fastcdc-gear-v1","minSize":4096,"averageSize":16384,"maxSize":65536},
                 "chunkIDs":"hmac-sha256","encryption":"aes-256-gcm","compression":"zstd"}
                """.utf8))
        let repo = try openRepository(store, tenant: "old", master: master)
        #expect(repo.keys.encryption == TenantKeys(dataKey: dataKey).encryption)
        #expect(repo.config.version == 1)
    }

    /// A config is plaintext; before version 3 a flipped digit of its creation time or of a
    /// chunker size that left a valid value opened as a silently different repository.
    @Test func aConfigChangedToAnotherValidValueFailsAuthentication() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let repo = try openRepository(store, tenant: "acme", master: master)
        #expect(repo.config.version == 3 && repo.config.mac?.count == 64)
        // Written independently of the code under test: the MAC recomputed from the stored text.
        let text = String(decoding: try store.get("tenants/acme/config"), as: UTF8.self)
        let created = try #require(text.range(of: #""created" : "20"#))
        var changed = text
        let digit = changed.index(created.upperBound, offsetBy: 1)  // the year's last digit
        changed.replaceSubrange(digit...digit, with: changed[digit] == "7" ? "8" : "7")
        try store.put("tenants/acme/config", Array(changed.utf8))
        #expect(throws: RepositoryError.self) { try openRepository(store, tenant: "acme", master: master) }
        // The original bytes open again: the MAC, not something else, refused the change.
        try store.put("tenants/acme/config", Array(text.utf8))
        #expect(try openRepository(store, tenant: "acme", master: master).config == repo.config)
    }

    /// A version 2 config (data key named, no MAC) still opens.
    @Test func aVersion2ConfigWithoutAMACStillOpens() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let dataKey = SecureRandom.bytes(32)
        let envelope = try KeyEnvelope.wrap(dataKey: dataKey, tenant: "two", master: master, created: Date())
        try store.put("tenants/two/keys/\(envelope.id)", try envelope.encoded())
        try store.put(
            "tenants/two/config",
            Array(
                """
                {"format":"tresor-tenant","version":2,"tenant":"two","created":"2026-01-01T00:00:00.000Z",
                 "chunker":{"algorithm":"fastcdc-gear-v1","minSize":4096,"averageSize":16384,"maxSize":65536},
                 "chunkIDs":"hmac-sha256","encryption":"aes-256-gcm","compression":"zstd",
                 "dataKey":"\(KeyEnvelope.fingerprint(dataKey: dataKey))"}
                """.utf8))
        let repo = try openRepository(store, tenant: "two", master: master)
        #expect(repo.keys.encryption == TenantKeys(dataKey: dataKey).encryption)
        #expect(repo.config.version == 2 && repo.config.mac == nil)
    }

    /// One damaged envelope used to stop every open with "wrong master key" although another
    /// envelope of the same key was intact.
    @Test func oneDamagedEnvelopeDoesNotLockTheTenantOut() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let repo = try openRepository(store, tenant: "acme", master: master)
        let first = try #require(try store.list(prefix: "tenants/acme/keys/").first)
        let envelope = try KeyEnvelope.decode(try store.get(first.key), key: first.key)
        let dataKey = try envelope.unwrap(master: master, tenant: "acme", id: envelope.id)
        let second = try envelope.rewrapped(dataKey: dataKey, master: master, created: Date())
        try store.put("tenants/acme/keys/\(second.id)", try second.encoded())
        // Damage the envelope that sorts first.
        var damaged = envelope
        damaged.sealed = String(damaged.sealed.dropLast(2)) + (damaged.sealed.hasSuffix("00") ? "01" : "00")
        try store.put(first.key, try damaged.encoded())
        let reopened = try openRepository(store, tenant: "acme", master: master)
        #expect(reopened.keys.encryption == repo.keys.encryption)
        #expect(reopened.keyProblems.count == 1)
        #expect(reopened.keyProblems.first?.hasPrefix(first.key) == true)
        // With every envelope unreadable, the message still says the master key is wrong.
        #expect { try openRepository(store, tenant: "acme", master: MasterKey.generate()) } throws: { error in
            (error as? RepositoryError)?.message.contains("wrong master key") == true
        }
    }

    /// A policy whose chunk_max_bytes was lowered after the repository was created used to size
    /// the writer's chunk slots below the chunks the repository's chunker cuts: a crash.
    @Test func aPolicyWithASmallerChunkMaximumDoesNotCrashABackup() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let master = MasterKey.generate()
        let repo = try openRepository(store, master: master)  // chunk maximum 64 KiB
        var lowered = smallPolicy
        lowered.chunkMin = 1024
        lowered.chunkAvg = 4096
        lowered.chunkMax = 8192
        let writer = try BlobWriter(repository: repo, index: RepositoryIndex(), settings: .init(policy: lowered, uploaders: 1))
        let stream = ChunkStream(repository: repo, writer: writer)
        var rng = SeededRandom(seed: 5)
        let data = rng.bytes(1 << 20)
        stream.begin()
        try data.withUnsafeBytes { try stream.append($0) }
        let chunks = try stream.finish()
        _ = try writer.finish()
        let index = try openRepository(store, master: master).loadIndex()
        let opener = try BlobOpener(keys: repo.keys)
        var back: [UInt8] = []
        for id in chunks { back += try repo.readBlob(id, index: index, opener: opener) }
        #expect(back == data)
        #expect(chunks.count < (1 << 20) / 8192, "chunks were cut to the repository's sizes, not the policy's")
    }

    /// A fixed chunk size above the repository's chunk maximum is a clear usage error, not a
    /// silent clamp or a crash.
    @Test func aRelationChunkLargerThanTheRepositoryMaximumIsAUsageError() throws {
        let dir = TempDirectory()
        let repo = try openRepository(try LocalStore(root: dir.url), master: .generate())
        #expect { try repo.validateFixedChunkSize(1 << 20, policyKey: "postgres.relation_chunk_bytes") } throws: { error in
            let e = error as? RepositoryError
            return e?.code == .usage && e?.message.contains("postgres.relation_chunk_bytes") == true && e?.hint != nil
        }
        try repo.validateFixedChunkSize(65536, policyKey: "postgres.relation_chunk_bytes")
    }
}
