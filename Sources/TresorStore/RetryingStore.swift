import Foundation
import TresorCore

/// Retries what may succeed on a second try, as restic's `backend/retry` does.
///
/// An operation that fails with ``StoreError/Code/transient`` (5xx, 429, timeouts, dropped
/// connections) or ``StoreError/Code/integrity`` (bytes damaged in transit) is tried again after
/// an exponentially growing delay with jitter (half fixed, half random, so many clients that
/// failed together do not return together). Every other error (404, 403, a refused `ifAbsent`,
/// a bad key) is passed through at once: trying again cannot change it. When the attempts are
/// used up the last error is thrown as ``StoreError/Code/io`` naming how often it was tried, so
/// an outer wrapper does not retry it again; the job then exits 1.
///
/// Retrying a put is safe: puts replace whole objects, and an `ifAbsent` put whose first attempt
/// landed but whose answer was lost returns `false` the second time, which callers of content-
/// addressed keys treat as success. Retrying a delete is safe because deletes are idempotent.
public final class RetryingStore: StoreWrapper {
    /// How hard to try.
    public struct Policy: Sendable {
        /// Attempts in all, the first included.
        public var attempts: Int
        /// The delay before the second attempt; each later one doubles, up to `maxDelay`.
        public var baseDelay: Double
        public var maxDelay: Double

        public init(attempts: Int = 6, baseDelay: Double = 0.25, maxDelay: Double = 8) {
            self.attempts = max(1, attempts)
            self.baseDelay = baseDelay
            self.maxDelay = maxDelay
        }
    }

    public let base: any Store
    public let policy: Policy
    private let sleep: @Sendable (Double) -> Void
    private let retryCount = Locked(0)

    /// `sleep` lets tests run without waiting; it defaults to blocking the calling thread.
    public init(_ base: any Store, policy: Policy = Policy(), sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }) {
        self.base = base
        self.policy = policy
        self.sleep = sleep
    }

    /// How many retries (attempts after a first failure) this wrapper made.
    public var retries: Int { retryCount.current }

    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    func delay(after attempt: Int) -> Double {
        let full = min(policy.maxDelay, policy.baseDelay * pow(2, Double(attempt - 1)))
        return full / 2 + Double.random(in: 0...(full / 2))
    }

    /// Runs `body` with the retry rules above (also for calls that are not store operations,
    /// such as creating a bucket).
    public func retrying<T>(_ body: () throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try body()
            } catch let e as StoreError where e.code == .transient || e.code == .integrity {
                guard attempt < policy.attempts else {
                    throw StoreError(
                        .io, "\(e.message) (gave up after \(attempt) attempts)",
                        hint: e.hint ?? "check that the store is reachable, then run the job again")
                }
                retryCount.withLock { $0 += 1 }
                sleep(delay(after: attempt))
                attempt += 1
            }
        }
    }

    public func around<T>(_ operation: StoreOperation, _ key: String, _ body: () throws -> T) throws -> T {
        try retrying(body)
    }
}
