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
    /// The locks jobs take (a tenant's jobs, its WAL stream, key rotation): `flock` files in the
    /// home (``Home/locker``), or in fleet mode (a PostgreSQL catalog) leases in the catalog, so
    /// workers on different hosts exclude each other too.
    public var locks: any Locks {
        config.catalogDSN == nil
            ? home.locker
            : CatalogLocks(catalog: catalog, worker: WorkerName.current, lease: config.leaseSeconds)
    }
}
