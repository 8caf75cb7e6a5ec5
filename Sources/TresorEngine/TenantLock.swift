#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TresorCore

/// An exclusive, non-blocking lock on one tenant's jobs within one home, held with `flock` on
/// `HOME/locks/<tenant>.lock`. The kernel drops the lock when the holder exits for any reason,
/// including `kill -9`, so a killed run never blocks the next cron run; the holder's PID is kept
/// in the file for the message a second run prints.
public final class TenantLock {
    private let fd: Int32

    /// Takes the lock or throws a `.locked` failure (exit 4) naming the holder.
    public init(home: Home, name: String) throws {
        try? FileManager.default.createDirectory(at: home.locks, withIntermediateDirectories: true)
        let path = home.locks.appendingPathComponent(name + ".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CoreError.failed("cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buf, 31, 0)
            close(fd)
            let holder = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw CoreError(.locked, "another run holds the lock for \(name) (pid \(holder)); nothing was done")
        }
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pwrite(fd, pid, pid.count, 0)
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
