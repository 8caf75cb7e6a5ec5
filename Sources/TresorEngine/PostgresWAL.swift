import Foundation
import TresorCatalog
import TresorCore
import TresorDocuments
import TresorPostgres
import TresorRepository
import TresorStore

#if canImport(Glibc)
import Glibc
#endif

/// What `tresor pg wal-push` did.
public struct WALPushResult: Codable, Sendable {
    public var tenant: String
    public var file: String
    public var result: WALArchive.PushResult
    public var bytes: Int
    public var seconds: Double

    public init(tenant: String, file: String, result: WALArchive.PushResult, bytes: Int, seconds: Double) {
        self.tenant = tenant
        self.file = file
        self.result = result
        self.bytes = bytes
        self.seconds = seconds
    }
}

/// The WAL commands as PostgreSQL runs them (as its own OS user): they read the home's config,
/// policies and `HOME/pg/<tenant>/`, never the catalog or the master key.
public struct PostgresWALAccess: Sendable {
    /// For `wal-push`: finds the cluster from each file's page header (``WALArchive/bound(to:)``).
    public let archive: WALArchive
    let spoolDirectory: String
    public let policy: Policy

    /// Same as ``HomeOpener/walAccess(tenant:clock:environmentCredentials:)``.
    public static func open(
        home: Home, configFile: URL?, tenant id: TenantID, clock: any Clock,
        environmentCredentials: S3Credentials? = nil, traffic: StoreTraffic = StoreTraffic()
    ) throws -> PostgresWALAccess {
        try HomeOpener(home: home, configFile: configFile, walTenant: id).walAccess(
            tenant: id, clock: clock, environmentCredentials: environmentCredentials,
            traffic: traffic)
    }

    /// Opens the tenant's WAL archive from the files `tresor pg setup` wrote, with the policy the
    /// opener read. `environmentCredentials`: S3 credentials from the caller's environment, which
    /// win over the file `pg setup --wal-credentials` stored for the PostgreSQL user.
    init(opener: HomeOpener, tenant id: TenantID, clock: any Clock, environmentCredentials: S3Credentials?, traffic: StoreTraffic) throws {
        let tenant = id.rawValue
        let home = opener.home
        let policy = opener.policy
        let dir = PostgresAccess.directory(home, id)
        guard let accessData = FileManager.default.contents(atPath: dir.appendingPathComponent("access.json").path),
            let access = try? JSONDecoder().decode(PostgresAccess.self, from: accessData), access.tenant == tenant
        else {
            throw CoreError.usage(
                "tenant '\(tenant)' is not set up for postgresql in \(home.root.path), or this user cannot read \(dir.path)",
                hint: "tresor pg setup \(tenant) (as the operator)")
        }
        guard let keyText = try? String(contentsOfFile: dir.appendingPathComponent("wal.key").path, encoding: .utf8) else {
            throw CoreError.usage(
                "cannot read the wal key of tenant '\(tenant)' (\(dir.path)/wal.key)",
                hint: "tresor pg setup \(tenant) --os-user USER (as the operator) gives the postgresql user read access")
        }
        let keys = try WALKeys(fileText: keyText)
        let url = try StoreURL.parse(access.store)
        var credentials: S3Credentials? = nil
        if url.needsCredentials {
            // The environment's key wins (as for every command), else the one pg setup stored.
            credentials = environmentCredentials
            let file = dir.appendingPathComponent(PostgresAccess.credentialsFile).path
            if credentials == nil, FileManager.default.fileExists(atPath: file) {
                credentials = try S3Credentials.load(file: file)
            }
            guard credentials != nil else {
                throw CoreError.usage(
                    "no s3 credentials for the wal of tenant '\(tenant)' (\(file) is missing or unreadable to this user)",
                    hint: "tresor pg setup \(tenant) --wal-credentials FILE (as the operator)")
            }
        }
        let store = try url.open(create: false, credentials: credentials, traffic: traffic)
        let archive = WALArchive(store: store, tenant: id, keys: keys, compressionLevel: policy.backup.compressionLevel, clock: clock)
        self.archive = archive
        spoolDirectory = PostgresAccess.spool(home, id).path
        self.policy = policy
    }
}

extension PostgresWALAccess {
    /// What `archive_command` (`tresor pg wal-push T PATH`) does: stores the WAL file at `path`
    /// in the archive of the cluster it belongs to (``WALArchive/bound(to:)``).
    public static func archiveCommand(
        home: Home, configFile: URL?, tenant id: TenantID, path: String, clock: any Clock,
        environmentCredentials: S3Credentials?, traffic: StoreTraffic = StoreTraffic()
    ) throws -> WALPushResult {
        let tenant = id.rawValue
        let start = Date()
        let access = try open(home: home, configFile: configFile, tenant: id, clock: clock, environmentCredentials: environmentCredentials, traffic: traffic)
        let result = try access.archive.push(path: path)
        var st = stat()
        // The file was just read whole; a size that cannot be read back is reported as 0 bytes.
        let size = stat(path, &st) == 0 ? Int(st.st_size) : 0
        return WALPushResult(
            tenant: tenant, file: (path as NSString).lastPathComponent, result: result, bytes: size,
            seconds: Date().timeIntervalSince(start))
    }

    /// What `restore_command` reads: the prefetch spool (a restore's own run directory `run`,
    /// see ``WALSpool/runDirectory(_:run:)``, or else the tenant's shared spool), over the
    /// archive of the tenant's current cluster.
    public func spool(run: String? = nil) throws -> WALSpool {
        WALSpool(archive: try archive.current(), directory: Self.spoolDirectory(spoolDirectory, run: run))
    }

    /// The tenant spool `spool`, or run directory `run` in it.
    static func spoolDirectory(_ spool: String, run: String?) -> String {
        run.map { WALSpool.runDirectory(spool, run: $0) } ?? spool
    }

    /// Refuses a run name that is not one ``WALSpool/newRunName()`` makes.
    static func checkRun(_ run: String?) throws {
        if let run, !WALSpool.isRunName(run) { throw PostgresError(.usage, "'\(run)' is not a spool run name (r- and 16 hex digits)") }
    }
}

/// `restore_command` must never make PostgreSQL end recovery early: it reads any exit status
/// below 126 as "this file is not in the archive", ends recovery there and promotes. So
/// `wal-fetch` answers "not archived" (exit 1) only when the store says the object is absent;
/// every other failure (store unreachable, 5xx after the store's own retries, an object that does
/// not authenticate, a key or access file it cannot read) is retried for
/// `[postgres] wal_fetch_retry`, then reported as ``WALFetchAbort``, which the command line
/// turns into exit status 128: PostgreSQL stops with a FATAL error and can be started again once
/// the store is back.
public struct WALFetchAbort: TresorFailure {
    public let message: String
    /// The last failure of the fetch.
    public var cause: (any Error)?
    public var kind: FailureKind { .failed }
    public var hint: String? { "fix the store or the access of the postgresql user, then start the server again: recovery resumes where it stopped" }
    /// The exit status that makes PostgreSQL abort recovery (above 125; 126 and 127 it would log
    /// as "command not executable" and "command not found", which would mislead).
    public static let exitStatus: Int32 = 128
}

extension PostgresWALAccess {
    /// What `restore_command` (`tresor pg wal-fetch T NAME DEST`) does: delivers WAL file `name`
    /// to `destination`, then starts the prefetcher for the segments after it (a detached
    /// `binary … pg wal-prefetch`, so PostgreSQL waits only for this process). Throws
    /// ``PostgresError/Code/notFound`` only when the archive really lacks the file, and
    /// ``WALFetchAbort`` when it could not be read for `[postgres] wal_fetch_retry`. `log` gets a
    /// line per failed attempt (PostgreSQL's server log). `spoolRun`: the restore's own spool
    /// directory (`--spool-run`, written by `pg restore`), read instead of the shared spool; a
    /// segment delivered from the archive is recorded there for the restore's prefetcher.
    public static func restoreCommand(
        home: Home, configFile: URL?, tenant id: TenantID, name: String, destination: String,
        clock: any Clock, environmentCredentials: S3Credentials?, traffic: StoreTraffic = StoreTraffic(), binary: String,
        spoolRun: String? = nil, log: (String) -> Void
    ) throws {
        let tenant = id.rawValue
        guard let wal = WALName(name) else { throw PostgresError(.usage, "'\(name)' is not a wal file name") }
        try checkRun(spoolRun)
        let spoolDirectory = Self.spoolDirectory(PostgresAccess.spool(home, id).path, run: spoolRun)
        if wal.kind == .history && wal.timeline == 1 {
            // Timeline 1 is the one initdb starts; a history file lists a timeline's parents, so
            // PostgreSQL never writes one for it. Promotion still asks for it (to copy the parent
            // timeline's history into the new one): answered without opening the archive.
            throw PostgresError(.notFound, "wal file \(name) is not in the archive of tenant '\(tenant)': timeline 1 has no history file")
        }
        let started = Date()
        // Until the policy is read, the shipped default.
        var retryFor = 300.0
        var pause = 1.0
        while true {
            do {
                // The retry time first: it holds even when the access files are what fails.
                let opener = try HomeOpener(home: home, configFile: configFile, walTenant: id)
                retryFor = opener.policy.postgres.walFetchRetry.seconds
                // A prefetched segment first: a rename, without opening the archive (on an object
                // store that is a round trip per segment).
                if try !WALSpool.deliverSpooled(wal, directory: spoolDirectory, to: destination) {
                    let access = try opener.walAccess(tenant: id, clock: clock, environmentCredentials: environmentCredentials, traffic: traffic)
                    _ = try access.spool(run: spoolRun).deliver(wal, to: destination)
                }
                if spoolRun != nil {
                    do {
                        try WALSpool.recordDelivered(wal, runDirectory: spoolDirectory)
                    } catch {
                        // Delivered all the same: the prefetcher only keeps its window where it was.
                        log("warning: cannot tell the prefetcher in \(spoolDirectory) that wal file \(name) was fetched directly: \(error)")
                    }
                }
                let depth = opener.policy.postgres.walPrefetchDepth
                if depth > 0, wal.kind == .segment,
                    WALSpool.needsPrefetch(after: wal, depth: depth, directory: spoolDirectory)
                {
                    var args = ["--home", home.root.path]
                    if let configFile { args += ["--config", configFile.path] }
                    if let spoolRun { args += ["--spool-run", spoolRun] }
                    // A prefetcher that does not start costs speed only: the next segment is
                    // then fetched directly when PostgreSQL asks for it.
                    _ = try? Spawn.start(binary, args + ["pg", "wal-prefetch", tenant, name], newSession: true)
                }
                return
            } catch let e as PostgresError where e.code == .notFound {
                throw e
            } catch {
                let left = retryFor - Date().timeIntervalSince(started)
                guard left > 0 else {
                    throw WALFetchAbort(
                        message:
                            "cannot fetch wal file \(name) of tenant '\(tenant)'; gave up after \(Int(retryFor)) s ([postgres] wal_fetch_retry) and stop recovery rather than end it early",
                        cause: error)
                }
                log("warning: cannot fetch wal file \(name) of tenant '\(tenant)': \(error); retrying for \(Int(left.rounded(.up))) s more")
                Thread.sleep(forTimeInterval: min(pause, left))
                pause = min(pause * 2, 10)
            }
        }
    }

    /// What `tresor pg wal-prefetch T NAME` does. Run as root (an operator's manual call), it
    /// first becomes the spool's owner (the PostgreSQL OS user), so everything it creates in the
    /// spool (segments, its lock file) belongs to the user that later renames and reopens them,
    /// and a link that user plants in its spool is never followed with root's rights.
    /// `run`: a restore's own spool directory instead of the shared spool. `follow` (with `run`):
    /// the restore's long-lived prefetcher (``WALSpool/follow(after:depth:threads:pgdata:idle:)``),
    /// which ends with the recovery of `pgdata`; it first removes abandoned run directories.
    public static func prefetch(
        home: Home, configFile: URL?, tenant id: TenantID, name: String, clock: any Clock,
        environmentCredentials: S3Credentials?, traffic: StoreTraffic = StoreTraffic(), wait: Bool,
        run: String? = nil, follow: Bool = false, pgdata: String? = nil
    ) throws {
        guard let wal = WALName(name) else { throw PostgresError(.usage, "'\(name)' is not a wal file name") }
        try checkRun(run)
        let spool = PostgresAccess.spool(home, id).path
        try becomeOwner(of: spool, tenant: id)
        let access = try open(home: home, configFile: configFile, tenant: id, clock: clock, environmentCredentials: environmentCredentials, traffic: traffic)
        let depth = access.policy.postgres.walPrefetchDepth
        let threads = min(depth, 2 * availableCores)
        if follow, let run {
            WALSpool.removeAbandonedRuns(in: spool, olderThan: followIdleSeconds, except: run)
            try access.spool(run: run).follow(after: wal, depth: depth, threads: threads, pgdata: pgdata, idle: followIdleSeconds)
        } else {
            try access.spool(run: run).prefetch(after: wal, depth: depth, threads: threads, waitForLock: wait)
        }
    }

    /// How long a restore's prefetcher waits for the server to take a segment before it ends (the
    /// server's `wal-fetch` then starts short-lived prefetchers as needed), and how old an
    /// abandoned run directory must be before another restore removes it.
    static let followIdleSeconds = 300.0

    /// When running as root, switches this process to the owner of `path` (group, then user).
    static func becomeOwner(of path: String, tenant: TenantID) throws {
        guard getuid() == 0 else { return }
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw PostgresError(.usage, "the wal spool \(path) is missing or not a directory", hint: "tresor pg setup \(tenant) (as the operator)")
        }
        guard st.st_uid != 0 else { return }
        guard setgroups(0, nil) == 0, setgid(st.st_gid) == 0, setuid(st.st_uid) == 0 else {
            throw PostgresError(.failed, "cannot switch to the owner (uid \(st.st_uid)) of the wal spool \(path): \(String(cString: strerror(errno)))")
        }
    }
}
