import Foundation
import Testing
import TresorCore
import TresorStore
import TresorTestSupport

/// RetryingStore, LimitedStore and FaultInjectingStore around a local store.
@Suite struct StoreWrapperTests {
    /// One per test (Swift Testing makes a fresh suite value for each), alive while it runs.
    let dir = TempDirectory()

    func local() throws -> LocalStore { try LocalStore(root: dir.url) }

    static let noSleep: @Sendable (Double) -> Void = { _ in }
    static let serverError = StoreError(.transient, "put x: http 503 SlowDown (injected)")

    @Test func wrappersKeepTheStoreContract() throws {
        let store = try local()
        let wrapped = RetryingStore(LimitedStore(FaultInjectingStore(store), limit: 3), sleep: Self.noSleep)
        let failures = StoreConformance.run(wrapped)
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func transientFailuresAreRetriedUntilTheySucceed() throws {
        let store = try local()
        let faults = FaultInjectingStore(
            store,
            rules: [
                .init(.put, times: 2, fault: .error(Self.serverError)),
                .init(.get, times: 1, fault: .error(StoreError(.integrity, "damaged in transit (injected)"))),
            ])
        let retrying = RetryingStore(faults, sleep: Self.noSleep)
        try retrying.put("a/b", [1, 2, 3])
        #expect(faults.calls(.put) == 3)
        #expect(try retrying.get("a/b") == [1, 2, 3])
        #expect(retrying.retries == 3)
        #expect(try store.get("a/b") == [1, 2, 3])
    }

    @Test func exhaustedRetriesBecomeAFailureNamingTheAttempts() throws {
        let store = try local()
        let faults = FaultInjectingStore(store, rules: [.init(.put, times: 1000, fault: .error(Self.serverError))])
        let retrying = RetryingStore(faults, policy: .init(attempts: 4), sleep: Self.noSleep)
        let e = #expect(throws: StoreError.self) { try retrying.put("a/b", [1]) }
        #expect(faults.calls(.put) == 4)
        #expect(e?.kind == .failed)
        #expect(e?.code == .io, "not transient any more, so an outer wrapper does not retry again")
        #expect(e?.message.contains("gave up after 4 attempts") == true)
        #expect(try store.head("a/b") == nil)
    }

    @Test func errorsThatCannotSucceedAreNotRetried() throws {
        let store = try local()
        let faults = FaultInjectingStore(
            store,
            rules: [
                .init(.put, times: 10, fault: .error(StoreError(.permission, "put x: http 403 AccessDenied (injected)")))
            ])
        let retrying = RetryingStore(faults, sleep: Self.noSleep)
        let e = #expect(throws: StoreError.self) { try retrying.put("a/b", [1]) }
        #expect(e?.code == .permission)
        #expect(faults.calls(.put) == 1)
        let missing = #expect(throws: StoreError.self) { try retrying.get("no/such") }
        #expect(missing?.code == .notFound)
        #expect(faults.calls(.get) == 1)
        #expect(retrying.retries == 0)
    }

    @Test func aDroppedConnectionAfterAnIfAbsentPutLandedIsSafe() throws {
        let store = try local()
        let faults = FaultInjectingStore(store, rules: [.init(.put, times: 1, fault: .dropAfter)])
        let retrying = RetryingStore(faults, sleep: Self.noSleep)
        // The first attempt stored the object but its answer was lost; the retry finds it there.
        #expect(try retrying.put("p/1", [4, 5], ifAbsent: true) == false)
        #expect(try store.get("p/1") == [4, 5])
        #expect(faults.calls(.put) == 2)
    }

    @Test func faultsStrikeOnlyChosenKeysAndAfterSkips() throws {
        let store = try local()
        let faults = FaultInjectingStore(store, rules: [.init(.put, keyContains: "data/", skip: 2, times: 1, fault: .error(Self.serverError))])
        try faults.put("index/1", [1])
        try faults.put("data/1", [1])
        try faults.put("data/2", [1])
        #expect(throws: StoreError.self) { try faults.put("data/3", [1]) }
        try faults.put("data/4", [1])
        #expect(faults.faultsInjected == 1)
    }

    @Test func theLimitBoundsOperationsInFlight() throws {
        let store = try local()
        let probe = InFlightProbe(FaultInjectingStore(store, rules: [.init(nil, times: 1000, fault: .delay(0.01))]))
        let limited = LimitedStore(probe, limit: 2)
        #expect(limited.capabilities.writeConcurrency <= 2)
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            _ = try? limited.put("c/\(i)", [UInt8(i)])
        }
        #expect(probe.maximum <= 2)
        #expect(probe.maximum >= 1)
        #expect(try store.list(prefix: "c/").count == 16)
    }
}

/// Records how many calls were inside the wrapped store at once.
final class InFlightProbe: StoreWrapper, @unchecked Sendable {
    let base: any Store
    private let state = Locked((now: 0, max: 0))
    init(_ base: any Store) { self.base = base }
    var maximum: Int { state.current.max }

    func around<T>(_ operation: StoreOperation, _ key: String, _ body: () throws -> T) rethrows -> T {
        state.withLock { s in
            s.now += 1
            s.max = max(s.max, s.now)
        }
        defer { state.withLock { $0.now -= 1 } }
        return try body()
    }
}
