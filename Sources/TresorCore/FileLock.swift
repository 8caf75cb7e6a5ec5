import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Locks held with `flock` on `<directory>/<name>.lock`: exclusive among the processes of one
/// host that use the same directory. The kernel drops a lock when its holder exits for any
/// reason, including `kill -9`, so a killed run never blocks the next cron run; the holder's PID
/// is kept in the file for the message a second run prints.
public struct FileLocks: Locks {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    public func acquire(_ name: String) throws -> any Lock {
        try FileLock(directory: directory, name: name)
    }
}

/// One lock taken by ``FileLocks``.
public final class FileLock: Lock {
    public let name: String
    private let fd: Locked<Int32?>

    /// Takes the lock or throws a `.locked` failure (exit 4) naming the holder.
    public init(directory: URL, name: String) throws {
        // A failure here surfaces as the open() error below, which names the path.
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name + ".lock").path
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
        // The PID is only for the message a second run prints; the lock does not depend on it.
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pwrite(fd, pid, pid.count, 0)
        self.name = name
        self.fd = Locked(fd)
    }

    public func release() {
        let held = fd.withLock { fd -> Int32? in
            defer { fd = nil }
            return fd
        }
        guard let held else { return }
        flock(held, LOCK_UN)
        close(held)
    }

    deinit { release() }
}
