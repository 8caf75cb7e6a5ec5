import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorStore
import TresorTestSupport

@testable import TresorEvidence

@Suite struct EvidenceReplicationTests {
    @Test func recordsAreCopiedOnceAndAChangedOffsiteCopyIsReported() throws {
        let f = try LogFixture(records: 3)
        let storeDir = TempDirectory("tresor-evidence-store")
        let store = try LocalStore(root: storeDir.url)
        let first = try EvidenceReplicator.replicate(log: f.url, to: store)
        let prefix = "evidence/\(SHA256.hash(f.key.publicKey.rawRepresentation).hex.prefix(16))/"
        #expect(first.copied == 3 && first.alreadyPresent == 0 && first.outcome == .ok && first.prefix == prefix)
        let lines = try f.lines()
        #expect(try store.get(prefix + "000000000002.json") == lines[1] + [10])

        try f.log.append(kind: .sweep, tenant: nil, payload: ["residual": 0])
        let second = try EvidenceReplicator.replicate(log: f.url, to: store)
        #expect(second.copied == 1 && second.alreadyPresent == 3 && second.records == 4)

        // Someone shortens the offsite copy of record 1: reported, not overwritten.
        try store.put(prefix + "000000000001.json", Array(lines[0].prefix(10)))
        let third = try EvidenceReplicator.replicate(log: f.url, to: store)
        #expect(third.conflicts == [1] && third.outcome == .problemFound && third.copied == 0)
        #expect(try store.get(prefix + "000000000001.json") == Array(lines[0].prefix(10)))
    }
}
