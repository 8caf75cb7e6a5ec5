import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorStore
import TresorTestSupport

@testable import TresorRepository

/// A store that cannot be read is a failed check (exit 1, retried), never reported as damage.
@Suite struct CheckerTests {
    static func repositoryWithPacks(_ dir: TempDirectory, master: MasterKey) throws -> LocalStore {
        let store = try LocalStore(root: dir.url)
        let repo = try openRepository(store, master: master)
        let writer = try BlobWriter(repository: repo, index: RepositoryIndex(), settings: .init(policy: smallPolicy, uploaders: 1))
        let hmac = HMACSHA256(key: repo.keys.chunkID)
        var rng = SeededRandom(seed: 5)
        for _ in 0..<20 {
            let data = rng.bytes(20_000)
            _ = try data.withUnsafeBytes { try writer.add(id: hmac.mac(data), type: .data, data: $0) }
        }
        _ = try writer.finish()
        return store
    }

    @Test func aPackReadThatIsRefusedFailsTheCheckInsteadOfNamingThePackDamaged() throws {
        let dir = TempDirectory()
        let master = MasterKey.generate()
        let store = try Self.repositoryWithPacks(dir, master: master)
        let refusing = FaultInjectingStore(
            store,
            rules: [
                .init(.get, keyContains: "/data/", times: 1_000_000, fault: .error(StoreError(.permission, "get: http 403 AccessDenied (injected)")))
            ])
        let repo = try TenantRepository.open(
            store: refusing, tenant: "acme", master: master, policy: smallPolicy,
            clock: SystemClock(), create: false)
        let error = #expect(throws: StoreError.self) { try Checker(repository: repo, threads: 2).run(readData: .all) }
        #expect(error?.code == .permission)
        // Without the fault the same repository is clean: the refusal was the only thing wrong.
        let clean = try Checker(repository: try openRepository(store, master: master)).run(readData: .all)
        #expect(clean.isClean && clean.packsRead > 0)
    }

    /// A chunk of pages (blob type `pages`) is checked against its page-group id: a pages blob
    /// stored under any other id (here the plain chunk id of its bytes) is named, and a right one
    /// passes.
    @Test func readDataNamesAPageChunkWhoseIDIsNotItsPageGroupID() throws {
        let dir = TempDirectory()
        let master = MasterKey.generate()
        let store = try LocalStore(root: dir.url)
        let repo = try openRepository(store, master: master)
        let writer = try BlobWriter(repository: repo, index: RepositoryIndex(), settings: .init(policy: smallPolicy, uploaders: 1))
        var rng = SeededRandom(seed: 6)
        let good = rng.bytes(3 * 8192 + 100), bad = rng.bytes(2 * 8192)
        let pageMAC = HMACSHA256(key: repo.keys.chunkID), groupMAC = HMACSHA256(key: repo.keys.pageGroupID)
        let goodID = groupMAC.mac(stride(from: 0, to: good.count, by: 8192).flatMap { pageMAC.mac(Array(good[$0..<min($0 + 8192, good.count)])).bytes })
        let badID = pageMAC.mac(bad)
        _ = try good.withUnsafeBytes { try writer.add(id: goodID, type: .pages, data: $0) }
        _ = try bad.withUnsafeBytes { try writer.add(id: badID, type: .pages, data: $0) }
        _ = try writer.finish()
        let report = try Checker(repository: try openRepository(store, master: master)).run(readData: .all)
        #expect(report.damagedPacks.count == 1)
        #expect(report.damagedPacks.values.first == "blob \(badID.short) does not hash to its id", "\(report.damagedPacks)")
    }

    /// The check matches each pack's header against the index by a count of matches per pack
    /// (not a second copy of the index grouped by pack): an index entry that the header does not
    /// list at that place must still name the pack damaged, and name the blob.
    @Test func anIndexEntryThatThePackHeaderDoesNotListThereNamesThePackAndTheBlob() throws {
        let dir = TempDirectory()
        let master = MasterKey.generate()
        let store = try Self.repositoryWithPacks(dir, master: master)
        let repo = try openRepository(store, master: master)
        let keys = try store.list(prefix: repo.layout.indexPrefix).map(\.key)
        var packs: [IndexFile.Pack] = []
        for k in keys { packs += try repo.readIndexObject(k).packs }
        guard let p = packs.firstIndex(where: { $0.entries.count >= 2 }) else {
            Issue.record("the fixture wrote no pack with two blobs")
            return
        }
        // The index now places the pack's first blob where its second one is.
        let moved = packs[p].entries[0]
        packs[p].entries[0].offset = packs[p].entries[1].offset
        try store.deleteMany(keys)
        _ = try repo.writeIndex(IndexFile(packs: packs), level: 3)
        let report = try Checker(repository: try openRepository(store, master: master), threads: 2).run(readData: .all)
        #expect(report.damagedPacks == [packs[p].id.hex: "header does not list blob \(moved.id.short) where the index says"])
        #expect(report.affected.isEmpty && report.problems.isEmpty)
    }
}
