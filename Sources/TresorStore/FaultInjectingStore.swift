import Foundation
import TresorCore

/// A store that fails on purpose, for tests: errors, slow answers and dropped connections at
/// chosen points, in front of a real store. Counts every call it sees.
public final class FaultInjectingStore: Store {
    /// The five operations (and the batch delete), for choosing where a fault strikes.
    public enum Operation: String, Sendable, CaseIterable {
        case put, get, head, list, delete
    }

    /// What happens to a matching call.
    public enum Fault: Sendable {
        /// The call is not passed on; it throws this error.
        case error(StoreError)
        /// The call waits this many seconds, then runs normally.
        case delay(Double)
        /// The call runs against the real store, then throws a transient error as if the
        /// connection dropped before the answer arrived (the write may have landed).
        case dropAfter
    }

    /// One fault: which calls it strikes (the operation, optionally only keys containing
    /// `keyContains`), how many matching calls to let through first, and how many to strike.
    public struct Rule: Sendable {
        public var operation: Operation?
        public var keyContains: String?
        public var skip: Int
        public var times: Int
        public var fault: Fault

        public init(_ operation: Operation?, keyContains: String? = nil, skip: Int = 0, times: Int = 1, fault: Fault) {
            self.operation = operation
            self.keyContains = keyContains
            self.skip = skip
            self.times = times
            self.fault = fault
        }
    }

    public let base: any Store
    private let state: Locked<(rules: [(rule: Rule, seen: Int)], calls: [Operation: Int], faults: Int)>

    public init(_ base: any Store, rules: [Rule] = []) {
        self.base = base
        self.state = Locked((rules.map { ($0, 0) }, [:], 0))
    }

    public var location: String { base.location }
    public var capabilities: StoreCapabilities { base.capabilities }

    /// Adds a rule after the existing ones.
    public func add(_ rule: Rule) { state.withLock { $0.rules.append((rule, 0)) } }

    /// Calls seen per operation (faulted ones included).
    public func calls(_ op: Operation) -> Int { state.withLock { $0.calls[op] ?? 0 } }
    /// Calls seen in all.
    public var totalCalls: Int { state.withLock { $0.calls.values.reduce(0, +) } }
    /// How many calls a fault struck.
    public var faultsInjected: Int { state.withLock { $0.faults } }

    private func fault(for op: Operation, key: String) -> Fault? {
        state.withLock { s -> Fault? in
            s.calls[op, default: 0] += 1
            for i in s.rules.indices {
                let r = s.rules[i].rule
                guard r.operation == nil || r.operation == op else { continue }
                if let k = r.keyContains, !key.contains(k) { continue }
                s.rules[i].seen += 1
                let n = s.rules[i].seen
                if n > r.skip && n <= r.skip + r.times {
                    s.faults += 1
                    return r.fault
                }
            }
            return nil
        }
    }

    private func run<T>(_ op: Operation, _ key: String, _ body: () throws -> T) throws -> T {
        switch fault(for: op, key: key) {
        case .error(let e)?:
            throw e
        case .delay(let seconds)?:
            Thread.sleep(forTimeInterval: seconds)
            return try body()
        case .dropAfter?:
            _ = try body()
            throw StoreError(.transient, "\(op.rawValue) \(key) in \(location) failed: connection dropped (injected)")
        case nil:
            return try body()
        }
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool) throws -> Bool {
        try run(.put, key) { try base.put(key, bytes: bytes, ifAbsent: ifAbsent) }
    }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, ifAbsent: Bool, sha256: ObjectID) throws -> Bool {
        try run(.put, key) { try base.put(key, bytes: bytes, ifAbsent: ifAbsent, sha256: sha256) }
    }

    public func get(_ key: String, range: Range<Int>?) throws -> [UInt8] { try run(.get, key) { try base.get(key, range: range) } }
    public func head(_ key: String) throws -> ObjectInfo? { try run(.head, key) { try base.head(key) } }
    public func list(prefix: String) throws -> [ObjectInfo] { try run(.list, prefix) { try base.list(prefix: prefix) } }
    public func delete(_ key: String) throws { try run(.delete, key) { try base.delete(key) } }

    public var versions: (any ObjectVersions)? { base.versions }

    public func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int {
        try base.abortIncompleteUploads(prefix: prefix, olderThan: age)
    }
}
