import Foundation
import TresorCore

/// Remembers the first ``StoreError/Code/permission`` failure that passed through it, so a job
/// whose inner code turns every read error into a finding (check names a pack it cannot read as
/// damaged) can still tell an access failure (wrong key, bucket policy, an object ACL the
/// operator lacks) from damage: the caller asks ``denied`` when the job is done and fails with it
/// (exit 1 and the store's hint) instead of reporting damage (exit 3).
///
/// Every operation is forwarded unchanged; errors are rethrown as they are.
public final class AccessWatchingStore: StoreWrapper {
    public let base: any Store
    private let first = Locked<StoreError?>(nil)

    public init(_ base: any Store) { self.base = base }

    /// The first permission failure seen, if any.
    public var denied: StoreError? { first.current }

    public func around<T>(_ operation: StoreOperation, _ key: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as StoreError where e.code == .permission {
            first.withLock { if $0 == nil { $0 = e } }
            throw e
        }
    }
}
