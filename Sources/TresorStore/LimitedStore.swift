import Foundation
import TresorCore

/// Bounds how many operations run against a store at once, as restic's `backend/sema` does:
/// callers beyond the limit block until one finishes. Keeps many pipeline threads (restore,
/// check, index loading) from opening more connections than a server should get from one client.
public final class LimitedStore: StoreWrapper {
    public let base: any Store
    public let limit: Int
    private let slots: DispatchSemaphore

    public init(_ base: any Store, limit: Int) {
        self.base = base
        self.limit = max(1, limit)
        self.slots = DispatchSemaphore(value: max(1, limit))
    }

    public var capabilities: StoreCapabilities {
        var c = base.capabilities
        c.writeConcurrency = min(c.writeConcurrency, limit)
        return c
    }

    public func around<T>(_ operation: StoreOperation, _ key: String, _ body: () throws -> T) rethrows -> T {
        slots.wait()
        defer { slots.signal() }
        return try body()
    }
}
