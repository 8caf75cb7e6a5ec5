import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorRepository
import TresorStore
import TresorTestSupport

@Suite struct TemporaryRepositoryTests {
    @Test(arguments: [TemporaryRepository.Backing.memory, .localDirectory])
    func blobsWrittenThroughItComeBackAfterAReopen(backing: TemporaryRepository.Backing) throws {
        let temp = try TemporaryRepository(backing: backing)
        #expect(temp.policy.backup.packTarget == 65536)
        let writer = try BlobWriter(
            repository: temp.repository, index: RepositoryIndex(),
            settings: .init(policy: temp.policy.backup, uploaders: 2))
        let hmac = HMACSHA256(key: temp.repository.keys.chunkID)
        var rng = SeededRandom(seed: 5)
        var blobs: [ObjectID: [UInt8]] = [:]
        for _ in 0..<20 {
            let data = rng.bytes(20_000)
            blobs[hmac.mac(data)] = data
            _ = try data.withUnsafeBytes { try writer.add(id: hmac.mac(data), type: .data, data: $0) }
        }
        #expect(try writer.finish().packs > 1)
        #expect(try !temp.store.list(prefix: "tenants/acme/data/").isEmpty)

        let reopened = try temp.reopen()
        let index = try reopened.loadIndex()
        let opener = try BlobOpener(keys: reopened.keys)
        for (id, data) in blobs {
            #expect(try reopened.readBlob(id, index: index, opener: opener) == data)
        }
    }
}
