import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Starting child processes with `posix_spawn`, every descriptor beyond 0–2 closed in the child.
///
/// Foundation's `Process` watches its child through a socket the child inherits; a daemon the
/// child leaves behind (a PostgreSQL server started by `pg_ctl`, a detached prefetcher) keeps
/// that socket open and the parent never sees the exit. Spawning directly and reaping with
/// `waitpid` has no such coupling.
public enum Spawn {
    public struct Failure: TresorFailure {
        public let kind = FailureKind.failed
        public let message: String
        public let hint: String? = nil
    }

    /// Starts `path` with `arguments`; standard output and error go to the given files (appended;
    /// nil means /dev/null). `newSession` detaches it from the caller's session and terminal.
    public static func start(
        _ path: String, _ arguments: [String], stdout: String? = nil, stderr: String? = nil,
        newSession: Bool = false
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        closeFrom3(&actions)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // The child starts with no signal blocked and SIGTERM and SIGINT at their default action,
        // whatever the spawning thread had: a Swift worker thread may have them blocked, and a
        // child that inherits a blocked SIGTERM never ends when asked to (a prefetcher told to
        // stop by a failed restore kept it waiting until its idle timeout, 300 s).
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGINT)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        // POSIX_SPAWN_SETSIGDEF (0x04), POSIX_SPAWN_SETSIGMASK (0x08), POSIX_SPAWN_SETSID (0x80).
        posix_spawnattr_setflags(&attr, Int16(0x04 | 0x08 | (newSession ? 0x80 : 0)))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
        guard rc == 0 else { throw Failure(message: "cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// glibc 2.34's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not
    /// export, looked up at run time.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let closeFrom: CloseFrom? = {
        guard let sym = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(sym, to: CloseFrom.self)
    }()

    private static func closeFrom3(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>) {
        if let f = closeFrom {
            _ = f(actions, 3)
        }
    }

    /// Waits for `pid` and returns its exit status (128 + signal when killed).
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }
        return 128 + (status & 0x7F)
    }
}
