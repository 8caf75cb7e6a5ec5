import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorRepository
import TresorTestSupport

/// Snapshot kinds are a closed set: a manifest naming another kind stops the reader loudly
/// (it was written by a newer Tresor), instead of being listed, planned or filtered as text.
@Suite struct SnapshotKindTests {
    /// Stores an authentic manifest whose `kind` is `kind`, written by hand as a newer writer would.
    func storeManifest(kind: String, in t: TemporaryRepository) throws -> String {
        let json = Array(
            """
            {"format":"tresor-snapshot","hostname":"h","kind":"\(kind)","roots":[],"stats":{"bytes":0,"bytesRead":0,\
            "changedDuringBackup":[],"directories":0,"files":0,"filesRead":0,"newBlobs":0,"newBytesStored":0,"skipped":[],\
            "symlinks":0},"tenant":"acme","time":"2026-11-27T10:00:00.000Z","tree":[],"version":1}
            """.utf8)
        let sealed = try SealedObject.seal(json, kind: .snapshot, keys: t.repository.keys, level: 3)
        let key = t.repository.layout.snapshot(SHA256.hash(json))
        try t.store.put(key, sealed, ifAbsent: true)
        return key
    }

    @Test func theOnDiskNamesOfTheKindsNeverChange() throws {
        #expect(SnapshotKind.allCases.map(\.rawValue) == ["documents", "pg-base"])
        let json = try JSONEncoder().encode([SnapshotKind.documents, .postgresBase])
        #expect(String(decoding: json, as: UTF8.self) == #"["documents","pg-base"]"#)
    }

    @Test func aManifestOfAKnownKindWrittenByHandReadsBack() throws {
        let t = try TemporaryRepository()
        _ = try storeManifest(kind: "pg-base", in: t)
        #expect(try t.reopen().snapshots().map(\.manifest.kind) == [.postgresBase])
    }

    @Test func aManifestOfAnUnknownKindStopsTheListingInsteadOfBeingListedAsText() throws {
        let t = try TemporaryRepository()
        let key = try storeManifest(kind: "wal-dump", in: t)
        let repo = try t.reopen()
        let error = try #require(throws: RepositoryError.self) { try repo.snapshots() }
        #expect(error.code == .failed)
        #expect(error.message.hasPrefix("\(key): unknown snapshot kind 'wal-dump'"))
        #expect(error.hint?.contains("at least as new") == true)
        // Not damage: `repair snapshots --remove` must never delete a newer writer's snapshot.
        #expect(!RepositoryError.isDamage(error))
        #expect(throws: RepositoryError.self) { try repo.snapshotsReportingDamage() }
    }

    @Test func authenticatingAnUnknownKindFailsWithoutCallingItDamage() throws {
        let t = try TemporaryRepository()
        let key = try storeManifest(kind: "wal-dump", in: t)
        let authenticator = ObjectAuthenticator(repository: t.repository, masters: [t.master])
        let error = try #require(throws: RepositoryError.self) { try authenticator.authenticate(key: key, bytes: try t.store.get(key)) }
        #expect(error.code == .failed && error.message.contains("unknown snapshot kind 'wal-dump'"))
    }
}
