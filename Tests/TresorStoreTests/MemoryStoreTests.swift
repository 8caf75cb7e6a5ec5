import Foundation
import Testing
import TresorStore
import TresorTestSupport

@Suite struct MemoryStoreTests {
    @Test func passesTheStoreConformanceSuite() {
        let failures = StoreConformance.run(MemoryStore())
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func aRangePastTheEndIsAnErrorNotAShortRead() throws {
        let store = MemoryStore()
        try store.put("a/b", [1, 2, 3])
        #expect(throws: StoreError.self) { try store.get("a/b", range: 2..<5) }
        #expect(store.keys == ["a/b"])
    }
}
