import Foundation
import TresorCore
import TresorPostgres

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL 15 cluster for tests and drills: `initdb` as the `postgres` OS user
/// into a temp dir, started on a free loopback port with its unix socket in the same temp dir,
/// stopped and removed when released.
///
/// initdb and postgres refuse to run as root, so when the process is root they run through
/// `runuser -u postgres`; the temp dir is then handed to that user. A cluster that cannot start
/// throws (with the server log's tail): tests fail, never skip.
public final class ScratchCluster: @unchecked Sendable {
    public static let bin = "/usr/lib/postgresql/15/bin"
    public static let osUser = "postgres"

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let dir: TempDirectory
    public let dataDirectory: String
    public let socketDirectory: String
    public private(set) var port: Int
    private var running = false

    /// Key=value DSN for libpq (TCP on 127.0.0.1, user postgres, trust auth).
    public var dsn: String { "host=127.0.0.1 port=\(port) user=postgres dbname=postgres" }

    /// Runs initdb into a new temp dir. `settings` are appended to postgresql.conf. `checksums`
    /// turns on data checksums (`initdb --data-checksums`).
    public init(label: String = "pg", settings: [String: String] = [:], checksums: Bool = false) throws {
        dir = TempDirectory("tresor-\(label)")
        dataDirectory = dir.sub("data").path
        socketDirectory = dir.sub("sock").path
        port = try Self.freePort()
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        try Self.handToPostgres(dir.path)
        try Self.handToPostgres(socketDirectory)
        try Self.run(
            Self.bin + "/initdb",
            ["-D", dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"] + (checksums ? ["--data-checksums"] : []),
            asPostgres: true)
        try appendSettings(
            ["listen_addresses": "'127.0.0.1'", "fsync": "off", "max_wal_senders": "4", "wal_level": "replica"]
                .merging(settings) { _, new in new })
    }

    /// Adopts an existing data directory (a restore) in `directory`, owned by postgres, to start
    /// it on a free port: run by the production ``RecoveryServer``, as `pg restore`'s drills will.
    public init(adopting data: String, in directory: TempDirectory) throws {
        dir = directory
        dataDirectory = data
        let server = try RecoveryServer(dataDirectory: data, workDirectory: directory.sub("server-\(UUID().uuidString.prefix(6))").path)
        self.server = server
        socketDirectory = server.socketDirectory
        port = server.port
    }

    /// The production runner of an adopted (restored) data directory.
    public private(set) var server: RecoveryServer?

    deinit {
        if running { try? stop(mode: "immediate") }
    }

    /// Appends `key = value` lines to postgresql.conf (values written as given: quote strings).
    public func appendSettings(_ settings: [String: String]) throws {
        let text = settings.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n"
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        try h.seekToEnd()
        try h.write(contentsOf: Data(text.utf8))
        try h.close()
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`). A recovering
    /// server accepts connections once consistent (hot_standby is on by default).
    public func start() throws {
        if let server {
            try server.start()
            running = true
            return
        }
        do {
            try Self.run(
                Self.bin + "/pg_ctl",
                [
                    "-D", dataDirectory, "-l", logPath, "-w", "-t", "120",
                    "-o", "-p \(port) -k \(socketDirectory) -c listen_addresses=127.0.0.1", "start",
                ], asPostgres: true)
        } catch {
            throw Failure(description: "postgresql did not start: \(error)\n\(logTail())")
        }
        running = true
    }

    public func stop(mode: String = "fast") throws {
        if let server {
            try server.stop(mode: mode)
            running = false
            return
        }
        try Self.run(Self.bin + "/pg_ctl", ["-D", dataDirectory, "-m", mode, "-w", "stop"], asPostgres: true)
        running = false
    }

    /// The server log (next to the socket, in a directory the postgres user owns).
    public var logPath: String { socketDirectory + "/server.log" }

    /// The last lines of the server log.
    public func logTail(_ lines: Int = 30) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Runs SQL with psql (unaligned, tuples only) and returns its output without the final newline.
    @discardableResult
    public func sql(_ statement: String, database: String = "postgres") throws -> String {
        let out = try Self.run(
            Self.bin + "/psql",
            [
                "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres",
                "-d", database, "-At", "-c", statement,
            ], asPostgres: false)
        return out.trimmingCharacters(in: .newlines)
    }

    /// Polls `query` until it returns `expected` or `seconds` pass; returns the last value.
    @discardableResult
    public func waitFor(_ query: String, toBe expected: String, seconds: Double = 60) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            last = (try? sql(query)) ?? ""
            if last == expected { return last }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return last
    }

    /// Switches to a new WAL segment and waits until the finished one is archived. Throws with
    /// the archiver's state when it is not.
    public func switchAndWaitForArchive(seconds: Double = 60) throws {
        let seg = try sql("SELECT pg_walfile_name(pg_switch_wal())")
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let last = try sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            if !last.isEmpty && last.prefix(24) >= seg.prefix(24) { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let state = (try? sql("SELECT last_archived_wal, last_failed_wal, failed_count FROM pg_stat_archiver")) ?? "?"
        throw Failure(description: "segment \(seg) was not archived within \(Int(seconds)) s (archiver: \(state))\n\(logTail())")
    }

    // MARK: helpers

    static func freePort() throws -> Int { try RecoveryServer.freePort() }

    /// Gives `path` to the postgres user when we are root.
    public static func handToPostgres(_ path: String) throws {
        guard getuid() == 0 else { return }
        guard let pw = getpwnam(osUser) else { throw Failure(description: "no '\(osUser)' os user: install postgresql-15") }
        chown(path, pw.pointee.pw_uid, pw.pointee.pw_gid)
    }

    /// Runs a program (as postgres when root and `asPostgres`), returns its standard output,
    /// throws with its standard error on a non-zero exit.
    @discardableResult
    public static func run(_ program: String, _ args: [String], asPostgres: Bool) throws -> String {
        var program = program, args = args
        if asPostgres && getuid() == 0 {
            args = ["-u", osUser, "--", program] + args
            program = "/usr/sbin/runuser"
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sc-\(UUID().uuidString).out").path
        let err = FileManager.default.temporaryDirectory.appendingPathComponent("sc-\(UUID().uuidString).err").path
        defer {
            unlink(out)
            unlink(err)
        }
        // posix_spawn rather than Process: pg_ctl leaves a server behind that would inherit
        // Process's exit-watching socket and hide pg_ctl's exit.
        let pid = try Spawn.start(program, args, stdout: out, stderr: err)
        let status = Spawn.wait(pid)
        let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard status == 0 else {
            let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            throw Failure(description: "\((program as NSString).lastPathComponent) \(args.joined(separator: " ")) exited \(status): \(stderr)")
        }
        return stdout
    }
}

extension ScratchCluster {
    nonisolated(unsafe) private static var sharedInstance: Result<ScratchCluster, Error>?
    private static let sharedLock = NSLock()

    /// One running cluster for every test of this process that only needs databases in it (the
    /// PostgreSQL catalog's tests); started on first use, stopped when the process exits.
    public static func shared() throws -> ScratchCluster {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if sharedInstance == nil {
            sharedInstance = Result {
                let c = try ScratchCluster(label: "pg-shared", settings: ["max_connections": "200"])
                try c.start()
                return c
            }
            atexit {
                if case .success(let c)? = ScratchCluster.sharedInstance { try? c.stop(mode: "immediate") }
            }
        }
        return try sharedInstance!.get()
    }

    /// Creates an empty database with a fresh name and returns its DSN (key=value form).
    public func freshDatabase(prefix: String = "t") throws -> (name: String, dsn: String) {
        let name = prefix + "_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        try sql("CREATE DATABASE \(name)")
        return (name, "host=127.0.0.1 port=\(port) user=postgres dbname=\(name)")
    }
}
