import Foundation
import Testing
import TresorCore
import TresorEngine
import TresorRepository

/// Choosing a snapshot by time never steps over one whose time cannot be read: such a manifest
/// (authentic, so a writer's fault) stops the choice loudly instead of sorting last and being
/// skipped, which used to hand back an older snapshot than the one asked for.
@Suite struct SnapshotTimeTests {
    static func manifest(_ time: String) -> SnapshotManifest {
        SnapshotManifest(tenant: "acme", kind: .documents, time: time, hostname: "h", roots: [], parent: nil, tree: [], stats: .init())
    }

    static let snapshots: [(id: ObjectID, manifest: SnapshotManifest)] = [
        (ObjectID(Array(repeating: UInt8(1), count: 32)), manifest("2026-11-01T10:00:00.000Z")),
        (ObjectID(Array(repeating: UInt8(2), count: 32)), manifest("sometime yesterday")),
    ]

    @Test func aDateSelectorRefusesToSkipASnapshotWhoseTimeCannotBeRead() throws {
        let error = try #require(throws: RepositoryError.self) {
            try Installation.selectSnapshot("2026-11-03", from: Self.snapshots, tenant: "acme")
        }
        #expect(error.code == .corrupt)
        #expect(error.message.contains("'sometime yesterday'"))
        // Without the unreadable one, the same selector picks the readable snapshot.
        #expect(try Installation.selectSnapshot("2026-11-03", from: [Self.snapshots[0]], tenant: "acme").id == Self.snapshots[0].id)
    }
}
