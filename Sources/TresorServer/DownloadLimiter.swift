import Synchronization
import TresorCore

/// Counts each tenant's downloads in flight and refuses one beyond the limit (the policy's
/// `exports.max_concurrent_downloads`), so one tenant cannot take every connection and file
/// descriptor of the server.
final class DownloadLimiter: Sendable {
    private let limit: Int
    private let running = Mutex<[TenantID: Int]>([:])

    init(limit: Int) { self.limit = limit }

    /// Takes a slot for `tenant`; false when all of its slots are taken.
    func tryAcquire(_ tenant: TenantID) -> Bool {
        running.withLock { r in
            let n = r[tenant, default: 0]
            guard n < limit else { return false }
            r[tenant] = n + 1
            return true
        }
    }

    func release(_ tenant: TenantID) {
        running.withLock { r in
            let n = r[tenant, default: 1] - 1
            r[tenant] = n > 0 ? n : nil
        }
    }
}
