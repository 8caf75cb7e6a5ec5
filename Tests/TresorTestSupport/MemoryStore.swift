import Foundation
import TresorCore
import TresorStore

/// A store that keeps its objects in memory, for tests that need a store but not a disk or a
/// server. It keeps every promise of ``Store`` (it runs ``StoreConformance``): puts are atomic
/// under one lock, reads see every finished put, deletes are idempotent, keys are checked like
/// every store checks them.
public final class MemoryStore: Store, @unchecked Sendable {
    private let objects = Locked([String: [UInt8]]())
    public let location: String
    public let capabilities = StoreCapabilities(atomicCreate: true, cheapRangedReads: true, writeConcurrency: 4)

    public init(name: String = "test") { location = "memory://\(name)" }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, options: PutOptions) throws -> Bool {
        try validateStoreKey(key)
        let copy = [UInt8](bytes)
        return objects.withLock { all in
            if options.ifAbsent && all[key] != nil { return false }
            all[key] = copy
            return true
        }
    }

    public func get(_ key: String, range: Range<Int>?) throws -> [UInt8] {
        try validateStoreKey(key)
        guard let object = objects.withLock({ $0[key] }) else { throw StoreError.notFound(key, in: location) }
        guard let range else { return object }
        guard range.lowerBound >= 0, range.upperBound <= object.count else {
            throw StoreError(.io, "object \(key) is shorter than the requested range \(range.lowerBound)..<\(range.upperBound)")
        }
        return Array(object[range])
    }

    public func head(_ key: String) throws -> ObjectInfo? {
        try validateStoreKey(key)
        return objects.withLock { $0[key] }.map { ObjectInfo(key: key, size: $0.count) }
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        objects.withLock { all in
            all.filter { $0.key.hasPrefix(prefix) }.map { ObjectInfo(key: $0.key, size: $0.value.count) }
        }.sorted { $0.key < $1.key }
    }

    public func delete(keys: [String]) throws {
        for key in keys { try validateStoreKey(key) }
        objects.withLock { all in for key in keys { all.removeValue(forKey: key) } }
    }

    /// A memory store has no interrupted uploads.
    public func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int { 0 }

    /// Every key, sorted: what a test compares against.
    public var keys: [String] { objects.withLock { Array($0.keys) }.sorted() }
}
