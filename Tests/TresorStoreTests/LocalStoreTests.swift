import Foundation
import Testing
import TresorCore
import TresorStore
import TresorTestSupport

@Suite struct LocalStoreTests {
    @Test func passesTheStoreConformanceSuite() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let failures = StoreConformance.run(store)
        #expect(failures.isEmpty, "\(failures)")
    }

    /// A restore reads pack windows into one reused buffer: the bytes land in its prefix, a
    /// longer buffer keeps its length (and its tail), a shorter one grows, and a range past the
    /// object's end is an error, never a buffer with stale bytes passed off as the object's.
    @Test func aRangedReadIntoAReusedBufferFillsItsPrefixAndRefusesARangePastTheEnd() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let object = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try store.put("t/p", object)
        var buffer = [UInt8](repeating: 0xEE, count: 8)
        try store.get("t/p", range: 100..<5_100, into: &buffer)
        #expect(buffer.count == 5_000 && Array(buffer[..<5_000]) == Array(object[100..<5_100]))
        try store.get("t/p", range: 9_990..<10_000, into: &buffer)
        #expect(buffer.count == 5_000, "never shrinks")
        #expect(Array(buffer[..<10]) == Array(object[9_990...]))
        #expect(Array(buffer[10..<5_000]) == Array(object[110..<5_100]), "the rest is left as it was")
        #expect(throws: StoreError.self) { try store.get("t/p", range: 9_000..<10_001, into: &buffer) }
        #expect(throws: StoreError.self) { try store.get("t/absent", range: 0..<1, into: &buffer) }
    }

    @Test func putLeavesNoTemporaryBehindAndListsNoInternals() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        try store.put("t/x", Array(repeating: 1, count: 4096))
        let temps = try FileManager.default.contentsOfDirectory(atPath: dir.sub(".tmp").path)
        #expect(temps.isEmpty)
        #expect(try store.list(prefix: "").map(\.key) == ["t/x"])
    }

    /// Temporaries a killed writer left used to stay forever; they go in a store-wide clean once
    /// older than the given age, while a fresh one (a writer in flight) and every object stay.
    @Test func staleTemporariesGoInAStoreWideCleanFreshOnesAndObjectsStay() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        try store.put("t/x", [1, 2, 3])
        let stale = dir.sub(".tmp/killed.part").path, fresh = dir.sub(".tmp/in-flight.part").path
        #expect(FileManager.default.createFile(atPath: stale, contents: Data([1])))
        #expect(FileManager.default.createFile(atPath: fresh, contents: Data([2])))
        let twoHoursAgo = Date().addingTimeInterval(-7200)
        try FileManager.default.setAttributes([.modificationDate: twoHoursAgo], ofItemAtPath: stale)
        #expect(try store.abortIncompleteUploads(prefix: "tenants/t/", olderThan: 3600) == 0, "one tenant's run never decides for the store")
        #expect(try store.abortIncompleteUploads(prefix: "", olderThan: 3600) == 1)
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(FileManager.default.fileExists(atPath: fresh))
        #expect(try store.get("t/x") == [1, 2, 3])
    }

    @Test func aMissingDirectoryIsRefusedWhenNotCreating() {
        let dir = TempDirectory()
        #expect(throws: StoreError.self) { try LocalStore(root: dir.sub("absent"), create: false) }
    }

    @Test func storeURLs() throws {
        #expect(try StoreURL.parse("file:///srv/backup") == .file(path: "/srv/backup"))
        for bad in ["ftp://x/y", "not a url", "file://relative/path"] {
            let e = #expect(throws: StoreError.self) { try StoreURL.parse(bad) }
            #expect(e?.kind == .usage)
        }
    }
}

@Suite struct CachedStoreTests {
    /// A store that counts the reads that reach it.
    final class CountingStore: StoreWrapper, @unchecked Sendable {
        let base: any Store
        let gets = Locked(0)
        init(_ base: LocalStore) { self.base = base }
        func get(_ key: String, range: Range<Int>?) throws -> [UInt8] {
            gets.withLock { $0 += 1 }
            return try base.get(key, range: range)
        }
    }

    @Test func immutableObjectsAreFetchedOnceAndOthersAlways() throws {
        let dir = TempDirectory()
        let counting = CountingStore(try LocalStore(root: dir.sub("remote")))
        let cached = try CachedStore(base: counting, directory: dir.sub("cache"), prefixes: ["t/index/"])
        try cached.put("t/index/a", [1, 2, 3])
        try cached.put("t/data/p", [4, 5, 6])
        for _ in 0..<3 {
            #expect(try cached.get("t/index/a") == [1, 2, 3])
            #expect(try cached.get("t/data/p") == [4, 5, 6])
        }
        #expect(counting.gets.current == 1 + 3, "one fetch of the index object, every fetch of the pack")
        #expect(try cached.get("t/index/a", range: 1..<2) == [2])
        try cached.delete("t/index/a")
        #expect(throws: StoreError.self) { try cached.get("t/index/a") }
        #expect(
            StoreConformance.run(
                try CachedStore(
                    base: try LocalStore(root: dir.sub("r2")), directory: dir.sub("c2"),
                    prefixes: ["conformance/c/"])
            ).isEmpty, "objects written once under conformance/c/ are cacheable")
    }
}
