import Foundation
import Testing
import TresorCore
import TresorStore
import TresorTestSupport

/// Every wrapper passes every ``StoreOperation`` to the store underneath (a wrapper that misses
/// one answers from the protocol's default, or not at all, and the data never reaches storage),
/// except what it exists to hold back: a dry run reaches no write.
@Suite struct StoreForwardingTests {
    /// A store that records which operations reached it, in front of a memory store.
    final class RecordingStore: StoreWrapper, @unchecked Sendable {
        let base: any Store
        let seen = Locked([StoreOperation]())
        init(_ base: any Store) { self.base = base }

        func around<T>(_ operation: StoreOperation, _ key: String, _ body: () throws -> T) throws -> T {
            seen.withLock { $0.append(operation) }
            return try body()
        }
    }

    /// Calls `operation` once on `store`. The switch is exhaustive: a new operation must be
    /// exercised here before this suite compiles.
    static func exercise(_ operation: StoreOperation, on store: any Store) throws {
        switch operation {
        case .put: try store.put("t/index/new", [1, 2, 3])
        case .get: #expect(try store.get("t/index/present") == [7, 7])
        case .head: #expect(try store.head("t/index/present")?.size == 2)
        case .list: #expect(try store.list(prefix: "t/").map(\.key).contains("t/index/present"))
        case .delete: try store.deleteMany(["t/data/old-1", "t/data/old-2"])
        case .cleanUploads: _ = try store.abortIncompleteUploads(prefix: "t/", olderThan: 3600)
        }
    }

    /// The wrappers under test, each around `base`; `holdsBack` are the operations it exists not
    /// to forward.
    static func wrappers(around base: any Store, cache: URL) throws -> [(name: String, store: any Store, holdsBack: Set<StoreOperation>)] {
        let sameRegion = RegionPlacement(tenant: "t", tenantRegion: "eu", store: "s", storeRegion: "eu", approved: false)
        return [
            ("retrying", RetryingStore(base, sleep: { _ in }), []),
            ("limited", LimitedStore(base, limit: 2), []),
            ("access-watching", AccessWatchingStore(base), []),
            ("fault-injecting", FaultInjectingStore(base), []),
            ("cached", try CachedStore(base: base, directory: cache, prefixes: ["t/index/"]), []),
            ("region-guard", RegionGuardStore(base, placement: sameRegion), []),
            ("dry-run", DryRunStore(base), [.put, .delete, .cleanUploads]),
        ]
    }

    @Test func everyWrapperForwardsEveryOperation() throws {
        let dir = TempDirectory()
        let memory = MemoryStore()
        let recording = RecordingStore(memory)
        for (i, w) in try Self.wrappers(around: recording, cache: dir.sub("cache")).enumerated() {
            for operation in StoreOperation.allCases {
                try memory.put("t/index/present", [7, 7])
                try memory.put("t/data/old-1", [1])
                recording.seen.withLock { $0 = [] }
                // A fresh cache for each, so the get is a miss that must reach the store.
                let store =
                    w.name == "cached" ? try CachedStore(base: recording, directory: dir.sub("cache-\(i)-\(operation)"), prefixes: ["t/index/"]) : w.store
                try Self.exercise(operation, on: store)
                let reached = recording.seen.current.contains(operation)
                if w.holdsBack.contains(operation) {
                    #expect(!reached, "\(w.name) must hold back \(operation)")
                } else {
                    #expect(reached, "\(w.name) does not forward \(operation)")
                }
            }
        }
    }

    @Test func aDryRunChangesNothingAndCountsWhatItHeldBack() throws {
        let memory = MemoryStore()
        try memory.put("t/index/present", [7, 7])
        let dry = DryRunStore(memory)
        #expect(try dry.put("t/index/new", [1, 2, 3]) == true)
        #expect(try dry.put("t/index/present", [1], ifAbsent: true) == false, "answers as the real put would")
        try dry.deleteMany(["t/index/present", "t/x"])
        #expect(memory.keys == ["t/index/present"])
        #expect(dry.skipped == DryRunStore.Skipped(puts: 1, bytesNotWritten: 3, deletes: 2, cleanups: 0))
    }

    @Test func aStoreOutsideTheTenantsRegionIsRefusedBeforeAnyOperationReachesIt() throws {
        let memory = MemoryStore()
        let recording = RecordingStore(memory)
        let abroad = RegionPlacement(tenant: "acme", tenantRegion: "eu", store: "us1", storeRegion: "us", approved: false)
        let guarded = RegionGuardStore(recording, placement: abroad)
        for operation in StoreOperation.allCases {
            let e = #expect(throws: StoreError.self) { try Self.exercise(operation, on: guarded) }
            #expect(e?.kind == .usage)
            #expect(e?.hint?.contains("tresor region approve acme --store us1") == true)
        }
        #expect(recording.seen.current.isEmpty)
        var approved = abroad
        approved.approved = true
        try memory.put("t/index/present", [7, 7])
        try Self.exercise(.get, on: RegionGuardStore(recording, placement: approved))
        #expect(recording.seen.current == [.get])
    }

    @Test func theFactoryRefusesAnUnapprovedStoreBeforeCreatingIt() throws {
        let dir = TempDirectory()
        let factory = StoreFactory(credentials: { throw StoreError(.badURL, "no credentials in this test") })
        let abroad = RegionPlacement(tenant: "acme", tenantRegion: "eu", store: "us1", storeRegion: "us", approved: false)
        let target = dir.sub("never-made")
        #expect(throws: StoreError.self) {
            _ = try factory.open(url: "file://\(target.path)", create: true, placement: abroad)
        }
        #expect(!FileManager.default.fileExists(atPath: target.path), "no directory made for a refused store")
        let dry = try factory.open(url: "file://\(dir.sub("made").path)", create: true, dryRun: true)
        try dry.put("a/b", [1])
        #expect(try dry.head("a/b") == nil, "the factory's dry run writes nothing")
    }
}
