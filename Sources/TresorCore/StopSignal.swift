#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT as a request to stop, for long-running commands (`pg stream`) that must
/// finish their current step (store what they hold) rather than die mid-way. The handler only
/// sets a flag; the command's loop polls ``requested``.
public enum StopSignal {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    /// Installs the handlers and unblocks the signals, which a parent may have left blocked
    /// (a process spawned from a thread that blocks them inherits its mask). Idempotent.
    public static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in StopSignal.flag = 1 }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Whether a stop was requested.
    public static var requested: Bool { flag != 0 }
}

/// Seconds on the monotonic clock: for intervals and deadlines, never for dates (those come from
/// a ``Clock``).
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
