import Foundation
import TresorCatalog
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

extension Installation {
    /// The tenant's lock for a job that writes to its repository (a backup, replication,
    /// retention). Taken, then the catalog is read again: a deletion may have run between the
    /// caller's first look at the tenant and the lock (deletion holds the same lock while it
    /// destroys keys and data and removes the lock file), and a writer that went on would create
    /// new keys and write the deleted tenant's data back. A deletion past its plan refuses too.
    public func lockTenantForWriting(_ id: TenantID) throws -> any Lock {
        let lock = try locks.acquire(id.rawValue)
        try refuseIfDeleted(id)
        return lock
    }

    func refuseIfDeleted(_ id: TenantID) throws {
        let name = id.rawValue
        _ = try tenant(id)  // throws naming the deletion when the row is gone
        if let d = try catalog.deletion(tenant: name), d.step > .planned {
            throw CoreError.usage(
                "tenant '\(name)' is being deleted after its contract ended (step \(d.step.rawValue)): nothing may be written for it",
                hint: "tresor deletion run finishes the deletion")
        }
    }

    /// The locks jobs take (a tenant's jobs, its WAL stream, key rotation): `flock` files in the
    /// home (``Home/locker``), or in fleet mode (a PostgreSQL catalog) leases in the catalog, so
    /// workers on different hosts exclude each other too.
    public var locks: any Locks {
        config.catalogDSN == nil
            ? home.locker
            : CatalogLocks(catalog: catalog, worker: WorkerName.current, lease: config.leaseSeconds)
    }
}
