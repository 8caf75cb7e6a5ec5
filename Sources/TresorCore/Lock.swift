/// A held exclusive lock on a name (a tenant's jobs, a tenant's WAL stream). It is held until
/// ``release()`` or until the value is freed, whichever comes first; releasing twice is harmless.
public protocol Lock: AnyObject {
    /// The name the lock was taken for.
    var name: String { get }
    func release()
}

/// Hands out ``Lock``s. Taking a name never waits: when another run holds it, `acquire` throws a
/// failure of kind `.locked` (exit 4) that names the holder where the implementation knows it,
/// and nothing else is done.
///
/// ``FileLocks`` (`flock` on one host) is today's implementation; a lease in a shared catalog,
/// for several hosts, is meant to be the next one.
public protocol Locks: Sendable {
    func acquire(_ name: String) throws -> any Lock
}
