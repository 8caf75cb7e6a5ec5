import Foundation
import Testing
import TresorCore
import TresorStore
import TresorTestSupport

/// The local cache of immutable objects never answers with bytes the store does not hold.
@Suite struct CachedStoreVerificationTests {
    let dir = TempDirectory()

    @Test func aDamagedCacheEntryIsRefetchedNotReturned() throws {
        let base = try LocalStore(root: dir.sub("store"))
        let cached = try CachedStore(base: base, directory: dir.sub("cache"), prefixes: ["t/index/"])
        let original = Array("the object as stored, long enough to damage in the middle".utf8)
        try base.put("t/index/a", original)
        #expect(try cached.get("t/index/a") == original)  // fills the cache

        let entry = dir.sub("cache/t/index/a").path
        var bytes = try #require(FileManager.default.contents(atPath: entry))
        bytes[10] ^= 0x04
        try bytes.write(to: URL(fileURLWithPath: entry))
        #expect(try cached.get("t/index/a") == original)
        // The entry was rewritten from the store: a later hit is good without the store.
        try base.delete("t/index/a")
        #expect(try cached.get("t/index/a") == original)
    }

    @Test func aTruncatedCacheEntryIsRefetched() throws {
        let base = try LocalStore(root: dir.sub("store"))
        let cached = try CachedStore(base: base, directory: dir.sub("cache"), prefixes: ["t/index/"])
        let original = [UInt8](repeating: 7, count: 100)
        try base.put("t/index/b", original)
        _ = try cached.get("t/index/b")
        try Data(original.prefix(40)).write(to: dir.sub("cache/t/index/b"))
        #expect(try cached.get("t/index/b") == original)
    }
}
