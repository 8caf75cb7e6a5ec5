import Foundation
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// A restored data directory run as a throwaway PostgreSQL server (no initdb): started on a
/// free loopback port as the data directory's owner (PostgreSQL refuses to run as root), with
/// its unix socket and log in a work directory of its own; waited on until recovery ends and the
/// server is promoted; stopped; removed. What restore drills and exports build on, and what the
/// tests' `ScratchCluster` runs restored data directories with.
///
/// Promotion is read from the control file (`pg_controldata`: "in production"), not through a
/// connection: a restored cluster keeps its production `pg_hba.conf`, so Tresor cannot assume
/// it may log in.
public final class RecoveryServer: @unchecked Sendable {
    public static let defaultBinDirectory = "/usr/lib/postgresql/15/bin"

    public let dataDirectory: String
    public let workDirectory: String
    public let binDirectory: String
    public let port: Int
    /// The OS user the server runs as (the data directory's owner), when that is not us.
    public let osUser: String?
    public private(set) var running = false

    public var socketDirectory: String { workDirectory + "/sock" }
    public var logPath: String { socketDirectory + "/server.log" }

    /// `workDirectory` is created (it must not exist yet) and given to the data directory's owner.
    public init(dataDirectory: String, workDirectory: String, binDirectory: String = RecoveryServer.defaultBinDirectory) throws {
        self.dataDirectory = dataDirectory
        self.workDirectory = workDirectory
        self.binDirectory = binDirectory
        var st = stat()
        guard stat(dataDirectory, &st) == 0 else {
            throw PostgresError(.usage, "cannot read data directory \(dataDirectory): \(String(cString: strerror(errno)))")
        }
        if getuid() == 0 {
            guard st.st_uid != 0, let pw = getpwuid(st.st_uid) else {
                throw PostgresError(
                    .usage, "data directory \(dataDirectory) belongs to root (uid 0) or to no named user; postgresql does not run as root",
                    hint: "give it to the user postgresql runs as (chown -R postgres)")
            }
            osUser = String(cString: pw.pointee.pw_name)
        } else {
            osUser = nil
        }
        port = try Self.freePort()
        for dir in [workDirectory, workDirectory + "/sock"] {
            guard mkdir(dir, 0o700) == 0 else {
                throw PostgresError(.failed, "cannot create \(dir): \(String(cString: strerror(errno)))")
            }
            if getuid() == 0 { chown(dir, st.st_uid, st.st_gid) }
        }
    }

    deinit {
        if running { try? stop(mode: "immediate") }
    }

    /// Starts the server and waits until it accepts connections or, while recovering, until
    /// `pg_ctl` gives up waiting (a server that is still replaying may not accept connections
    /// yet; ``waitForPromotion(seconds:)`` follows it). Throws with the log's tail when it exits.
    public func start(extraOptions: String = "", seconds: Int = 120) throws {
        do {
            try run(
                binDirectory + "/pg_ctl",
                [
                    "-D", dataDirectory, "-l", logPath, "-w", "-t", String(seconds),
                    "-o", "-p \(port) -k \(socketDirectory) -c listen_addresses=127.0.0.1 \(extraOptions)", "start",
                ])
            running = true
        } catch {
            running = FileManager.default.fileExists(atPath: dataDirectory + "/postmaster.pid")
            guard running else { throw PostgresError(.server, "postgresql did not start: \(error)\n\(logTail())") }
        }
    }

    /// The cluster state recorded in the control file (`in production`, `in archive recovery`, ...).
    public func controlState() throws -> String {
        let out = try run(binDirectory + "/pg_controldata", ["-D", dataDirectory])
        let line = out.split(separator: "\n").first { $0.hasPrefix("Database cluster state:") }
        return line.map { $0.dropFirst("Database cluster state:".count).trimmingCharacters(in: .whitespaces) } ?? "unknown"
    }

    /// Waits until recovery ended and the server was promoted (true), the server exited
    /// (false: a FATAL error in recovery; see ``logTail(_:)``), or `seconds` passed (false).
    public func waitForPromotion(seconds: Double = 600) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard FileManager.default.fileExists(atPath: dataDirectory + "/postmaster.pid") else {
                running = false
                return false
            }
            // The control file read directly every 20 ms where its layout is known (one pread of
            // 20 bytes per look, no process started; the drill's checks start at promotion, so
            // a longer pause is time added to every drill); else pg_controldata's answer every 0.3 s.
            if let inProduction = Self.inProduction(dataDirectory: dataDirectory) {
                if inProduction { return true }
                Thread.sleep(forTimeInterval: 0.02)
                continue
            }
            if try controlState() == "in production" { return true }
            Thread.sleep(forTimeInterval: 0.3)
        }
        return false
    }

    /// Whether `global/pg_control` says "in production", read from the file itself: its
    /// `state` member (a 32-bit `DBState`, 6 = `DB_IN_PRODUCTION`) follows the system
    /// identifier (64 bits), `pg_control_version` and `catalog_version_no` (32 bits each) in
    /// PostgreSQL's `ControlFileData`. Nil when the file cannot be read or its
    /// `pg_control_version` is not 1300 (PostgreSQL 13 to 16, whose layout this is): the caller
    /// then asks `pg_controldata`.
    static func inProduction(dataDirectory: String) -> Bool? {
        let fd = open(dataDirectory + "/global/pg_control", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 20)
        guard pread(fd, &head, 20, 0) == 20 else { return nil }
        // In the host's byte order, as the server wrote it.
        func u32(_ at: Int) -> UInt32 { head.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
        guard u32(8) == 1300 else { return nil }
        return u32(16) == 6
    }

    /// Starts the server and follows recovery until it is promoted (true), the server stopped,
    /// or `seconds` passed (false; ``stopReason()`` tells why it stopped). A start that fails is
    /// not thrown: ``start(extraOptions:seconds:)`` throws only when the server is gone, which is
    /// the "stopped in recovery" answer, with its reason in the log.
    /// `extraOptions`: more server settings (`-c name=value ...`), as for ``start(extraOptions:seconds:)``.
    public func startUntilPromoted(seconds: Double, extraOptions: String = "") throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        do { try start(extraOptions: extraOptions, seconds: max(1, Int(min(seconds, 120)))) } catch { return false }
        let left = deadline.timeIntervalSinceNow
        return try left > 0 && waitForPromotion(seconds: left)
    }

    /// Why the server stopped: the log's last FATAL line, else its last lines (empty when there
    /// is no log, which the caller's own message then stands for).
    public func stopReason() -> String {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").last { $0.contains("FATAL:") }.map(String.init) ?? logTail(3)
    }

    public func stop(mode: String = "fast") throws {
        guard FileManager.default.fileExists(atPath: dataDirectory + "/postmaster.pid") else {
            running = false
            return
        }
        try run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", mode, "-w", "stop"])
        running = false
    }

    /// Immediate shutdown without `pg_ctl`: SIGQUIT to the postmaster named in `postmaster.pid`,
    /// then a look every 10 ms until it is gone (`pg_ctl -w` looks every 100 ms, a pause every
    /// drill would add to its time). Where the signal is not ours to send (another user's
    /// server), `pg_ctl` stops it as its owner. Throws when it is still running after `seconds`.
    public func stopImmediately(seconds: Double = 30) throws {
        // No readable pid file: no server runs in this data directory (or it has just removed it).
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
            let first = text.split(separator: "\n").first, let pid = pid_t(first.trimmingCharacters(in: .whitespaces)), pid > 0
        else {
            running = false
            return
        }
        // A pid reused by a process that is no postgres: the server is gone.
        let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
        guard String(decoding: cmdline, as: UTF8.self).contains("postgres") else {
            running = false
            return
        }
        guard kill(pid, SIGQUIT) == 0 else {
            if errno == ESRCH {
                running = false
                return
            }
            try stop(mode: "immediate")
            return
        }
        let deadline = Date().addingTimeInterval(seconds)
        while Self.alive(pid) {
            guard Date() < deadline else {
                throw PostgresError(.server, "the server (pid \(pid)) in \(dataDirectory) did not stop within \(Int(seconds)) s of an immediate shutdown")
            }
            usleep(10_000)
        }
        running = false
    }

    /// Whether `pid` still runs: it exists and is no zombie (an exited postmaster whose parent,
    /// not this process, has not reaped it yet is stopped all the same).
    static func alive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        // Unreadable stat: the process exists (kill said so), so it counts as running.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let end = stat.lastIndex(of: ")") else { return true }
        return stat[end...].dropFirst(2).first != "Z"
    }

    /// Stops the server and removes the data directory and the work directory.
    public func remove() throws {
        try stop(mode: "immediate")
        for dir in [dataDirectory, workDirectory] where FileManager.default.fileExists(atPath: dir) {
            try FileManager.default.removeItem(atPath: dir)
        }
    }

    /// The last lines of the server log.
    public func logTail(_ lines: Int = 30) -> String {
        // The log may not exist when the server never started; the caller reports that.
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// A free TCP port on 127.0.0.1 (bound to port 0, read back, released).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PostgresError(.failed, "socket() failed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw PostgresError(.failed, "cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Runs a PostgreSQL program as the data directory's owner; its standard output, or an error
    /// with its standard error.
    @discardableResult
    func run(_ program: String, _ args: [String]) throws -> String {
        var program = program, args = args
        if let osUser {
            args = ["-u", osUser, "--", program] + args
            program = "/usr/sbin/runuser"
        }
        let out = workDirectory + "/.out-\(UUID().uuidString)", err = workDirectory + "/.err-\(UUID().uuidString)"
        defer {
            unlink(out)
            unlink(err)
        }
        let status = Spawn.wait(try Spawn.start(program, args, stdout: out, stderr: err))
        let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard status == 0 else {
            let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            throw PostgresError(.server, "\((program as NSString).lastPathComponent) \(args.joined(separator: " ")) exited \(status): \(stderr)")
        }
        return stdout
    }
}
