import Foundation
import Testing
import TresorStore
import TresorTestSupport

@Suite struct LocalStoreTests {
    @Test func passesTheStoreConformanceSuite() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let failures = StoreConformance.run(store)
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func putLeavesNoTemporaryBehindAndListsNoInternals() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        try store.put("t/x", Array(repeating: 1, count: 4096))
        let temps = try FileManager.default.contentsOfDirectory(atPath: dir.sub(".tmp").path)
        #expect(temps.isEmpty)
        #expect(try store.list(prefix: "").map(\.key) == ["t/x"])
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
