import Foundation
import TresorCore

/// Execution without change, as restic's `backend/dryrun` does: reads go to the store underneath,
/// writes and deletes do not. A put answers as the real one would (`ifAbsent` against an existing
/// key is `false`) and a delete succeeds, so the code above runs its normal path; what was held
/// back is counted in ``skipped`` for the caller's report, never dropped silently.
public final class DryRunStore: StoreWrapper {
    /// What a dry run held back.
    public struct Skipped: Sendable, Equatable, Codable {
        public var puts = 0
        public var bytesNotWritten = 0
        public var deletes = 0
        public var cleanups = 0

        public init(puts: Int = 0, bytesNotWritten: Int = 0, deletes: Int = 0, cleanups: Int = 0) {
            self.puts = puts
            self.bytesNotWritten = bytesNotWritten
            self.deletes = deletes
            self.cleanups = cleanups
        }
    }

    public let base: any Store
    private let tally = Locked(Skipped())

    public init(_ base: any Store) { self.base = base }

    /// The writes, deletes and cleanups held back so far.
    public var skipped: Skipped { tally.current }

    @discardableResult
    public func put(_ key: String, bytes: UnsafeRawBufferPointer, options: PutOptions) throws -> Bool {
        try validateStoreKey(key)
        let wouldWrite = options.ifAbsent ? try base.head(key) == nil : true
        if wouldWrite {
            tally.withLock {
                $0.puts += 1
                $0.bytesNotWritten += bytes.count
            }
        }
        return wouldWrite
    }

    public func delete(keys: [String]) throws {
        for k in keys { try validateStoreKey(k) }
        tally.withLock { $0.deletes += keys.count }
    }

    /// Nothing is removed; the count is of calls held back, since what a real cleanup would
    /// find is only known by doing it.
    public func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int {
        tally.withLock { $0.cleanups += 1 }
        return 0
    }
}
