import Foundation
import TresorCore

/// The lock on one tenant's jobs within one home: a ``FileLock`` in `HOME/locks/`. Callers
/// that can take any ``Locks`` should use ``Home/locker``; this name stays for the job files.
public typealias TenantLock = FileLock

extension FileLock {
    /// Takes `HOME/locks/<name>.lock` or throws a `.locked` failure (exit 4) naming the holder.
    public convenience init(home: Home, name: String) throws {
        try self.init(directory: home.locks, name: name)
    }
}

extension Home {
    /// The home's locks: `flock` files in ``locks``, exclusive on this host.
    public var locker: any Locks { FileLocks(directory: locks) }
}
