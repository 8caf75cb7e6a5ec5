import Foundation
import TresorCore

/// A claimed lease, kept alive by a thread that renews it every third of its length until
/// ``finish(doneAt:)``, so a job longer than one lease keeps it, and a worker killed mid-job
/// stops renewing and loses it when it runs out.
public final class JobLease: @unchecked Sendable {
    // @unchecked: the mutable state is behind `state`'s lock; the rest is immutable.
    public let key: JobKey
    public let worker: String
    private let catalog: any Catalog
    private let stop = DispatchSemaphore(value: 0)
    private let state = Locked((finished: false, lost: nil as String?))

    /// Claims `key` (see ``Catalog/claimJob(_:worker:lease:notDoneSince:)``): the lease when
    /// claimed, else what the catalog answered.
    public static func claim(
        _ key: JobKey, in catalog: any Catalog, worker: String, lease: TimeInterval,
        notDoneSince: Date?
    ) throws -> Result<JobLease, Refusal> {
        switch try catalog.claimJob(key, worker: worker, lease: lease, notDoneSince: notDoneSince) {
        case .claimed: return .success(JobLease(key: key, catalog: catalog, worker: worker, lease: lease))
        case .held(let by): return .failure(.held(by: by))
        case .done(let at): return .failure(.done(at: at))
        }
    }

    /// Why a claim was refused (``JobClaim`` without `.claimed`).
    public enum Refusal: Error, Sendable, Equatable {
        case held(by: String)
        case done(at: Date)
    }

    private init(key: JobKey, catalog: any Catalog, worker: String, lease: TimeInterval) {
        self.key = key
        self.catalog = catalog
        self.worker = worker
        let thread = Thread { [stop, state] in
            while stop.wait(timeout: .now() + lease / 3) == .timedOut {
                do {
                    if try !catalog.renewJob(key, worker: worker, lease: lease) {
                        state.withLock { $0.lost = "the lease ran out and another worker took it" }
                        return
                    }
                } catch {
                    // Kept for finish(), which reports it; renewing again may still succeed.
                    state.withLock { $0.lost = "cannot renew the lease: \(error)" }
                }
            }
        }
        thread.name = "lease \(key.owner)/\(key.job)"
        thread.start()
    }

    /// Why the lease may have been lost while held (another worker may have run the job too);
    /// `nil` while it was renewed on time.
    public var lost: String? { state.withLock { $0.lost } }

    /// Stops renewing and releases the lease; `doneAt` records the job as done then. Returns why
    /// the lease was lost, if it was. Calling it twice does nothing the second time.
    @discardableResult
    public func finish(doneAt: Date?) throws -> String? {
        let first = state.withLock { s -> Bool in
            defer { s.finished = true }; return !s.finished
        }
        guard first else { return lost }
        stop.signal()
        if try !catalog.releaseJob(key, worker: worker, doneAt: doneAt) {
            state.withLock { $0.lost = "the lease ran out and another worker took it" }
        }
        return lost
    }

    deinit {
        // A lease dropped without finish() (an early exit): release it rather than make the
        // next worker wait for it to run out. A failure leaves it to run out, which is safe.
        _ = try? finish(doneAt: nil)
    }
}

/// ``Locks`` as leases in a shared catalog: exclusive across every host that uses the catalog
/// (fleet mode's tenant locks). A lock held by a killed process is free again when its lease
/// runs out; while held it is renewed every third of `lease`.
public struct CatalogLocks: Locks {
    public let catalog: any Catalog
    public let worker: String
    public let lease: TimeInterval

    public init(catalog: any Catalog, worker: String, lease: TimeInterval) {
        self.catalog = catalog
        self.worker = worker
        self.lease = lease
    }

    public func acquire(_ name: String) throws -> any Lock {
        switch try JobLease.claim(JobKey(owner: name, job: "lock"), in: catalog, worker: worker, lease: lease, notDoneSince: nil) {
        case .success(let lease): return CatalogLock(name: name, lease: lease)
        case .failure(.held(let by)):
            throw CoreError(.locked, "another run holds the lock for \(name) (worker \(by)); nothing was done")
        case .failure(.done):
            // notDoneSince is nil, so the catalog never answers .done for a lock.
            throw CoreError.failed("the catalog answered a lock claim for \(name) with 'done'")
        }
    }
}

/// One lock taken by ``CatalogLocks``.
public final class CatalogLock: Lock {
    public let name: String
    private let lease: JobLease

    init(name: String, lease: JobLease) {
        self.name = name
        self.lease = lease
    }

    public func release() {
        // A failed release leaves the lease to run out: the lock frees itself, later.
        _ = try? lease.finish(doneAt: nil)
    }

    deinit { release() }
}
