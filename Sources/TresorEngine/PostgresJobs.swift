#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TresorCatalog
import TresorCore
import TresorDocuments
import TresorPostgres
import TresorRepository
import TresorStore

/// The files that let `archive_command` and `restore_command`, running as the PostgreSQL OS user,
/// reach one tenant's WAL archive without the catalog or the master key.
///
/// ```
/// HOME/pg/<tenant>/access.json   {"tenant":..,"store":<store URL>} (no secret)
/// HOME/pg/<tenant>/wal.key       the tenant's WAL keys (WALKeys), mode 0640, group of the pg user
/// HOME/spool/pg/<tenant>/        prefetched WAL, owned by the pg user, mode 0700
/// ```
/// `tresor pg setup` writes them (as the operator, who holds the master key).
public struct PostgresAccess: Codable, Sendable {
    public var tenant: String
    public var store: String

    static func directory(_ home: Home, _ tenant: String) -> URL { home.root.appendingPathComponent("pg/\(tenant)") }
    static func spool(_ home: Home, _ tenant: String) -> URL { home.root.appendingPathComponent("spool/pg/\(tenant)") }
    /// The S3 credentials file of the PostgreSQL OS user, in ``directory(_:_:)``.
    static let credentialsFile = "s3-credentials"

    /// What the PostgreSQL OS user's S3 key must be allowed (and nothing more).
    static func walScope(_ storeURL: String, tenant: String) -> String {
        guard case .s3(let location)? = try? StoreURL.parse(storeURL) else { return "tenants/\(tenant)/wal/" }
        let prefix = location.prefix.isEmpty ? "" : location.prefix + "/"
        let walPrefix = "\(prefix)tenants/\(tenant)/wal/"
        // wal-push needs only PutObject (+ PutObjectAcl for the owner ACL it sends); GetObject reads
        // a duplicate's header and serves wal-fetch; ListBucket limited to the prefix lets a 403
        // for a missing key be told apart from a refusal (wal-fetch's "not archived").
        return "s3:PutObject, s3:PutObjectAcl and s3:GetObject on s3://\(location.bucket)/\(walPrefix)* (arn:aws:s3:::\(location.bucket)/\(walPrefix)*); " +
            "s3:ListBucket on arn:aws:s3:::\(location.bucket) with condition StringLike s3:prefix \(walPrefix)*"
    }

    /// The replication slot `pg stream` uses unless told otherwise.
    static func defaultSlot(_ tenant: String) -> String { "tresor_" + tenant.lowercased().replacingOccurrences(of: "-", with: "_") }
}

/// What `tresor pg setup` prints and did.
public struct PostgresSetupResult: Codable, Sendable {
    public var tenant: String
    public var settings: [String: String]
    /// Lines for postgresql.conf (or ALTER SYSTEM).
    public var postgresqlConf: [String]
    public var pgHBA: [String]
    public var restoreCommand: String
    public var slot: String
    /// Files and directories prepared for the PostgreSQL OS user.
    public var prepared: [String]
    /// Commands the operator still has to run (when not run as root).
    public var todo: [String]
    /// S3 stores: what the PostgreSQL user's key may do, and nothing more.
    public var s3Scope: String?
}

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

/// What `tresor pg basebackup` did.
public struct BaseBackupResult: Codable, Sendable {
    public var tenant: String
    public var snapshot: String
    public var postgres: PostgresBackupInfo
    public var files: Int
    public var bytes: UInt64
    public var newBlobs: Int
    public var newBytesStored: UInt64
    public var seconds: Double
}

/// What `tresor pg restore` did.
public struct PostgresRestoreResult: Codable, Sendable {
    public var tenant: String
    public var snapshot: String
    public var baseBackupEnd: String
    public var pgdata: String
    public var target: String
    public var files: Int
    public var bytes: UInt64
    public var seconds: Double
    public var outcome: Outcome
}

/// The PostgreSQL jobs.
extension Installation {
    /// `tresor pg setup T`: writes the WAL key file and access description the PostgreSQL OS user
    /// reads, prepares the spool and (for a local store) the WAL directory it writes, and returns
    /// the settings the server needs.
    /// `walCredentials`: for an S3 store, an AWS-style credentials file for the PostgreSQL OS
    /// user (a key that may only read, list and write the tenant's WAL prefix); required there.
    public func setupPostgres(tenant name: String, osUser: String, binary: String, walCredentials: String? = nil) throws -> PostgresSetupResult {
        let tenant = try self.tenant(name)
        let record = try storeRecord(tenant.store)
        let storeURL = try StoreURL.parse(record.url)
        var walCredentialsText: String? = nil
        if storeURL.needsCredentials {
            guard let walCredentials else {
                throw CoreError.usage("tenant '\(name)' stores in s3, so archive_command (run as \(osUser)) needs s3 credentials of its own",
                                      hint: "tresor pg setup \(name) --wal-credentials FILE (an AWS-style file whose key may read, list and write only \(PostgresAccess.walScope(record.url, tenant: name)))")
            }
            _ = try S3Credentials.load(file: walCredentials)
            walCredentialsText = try String(contentsOfFile: walCredentials, encoding: .utf8)
        } else if walCredentials != nil {
            throw CoreError.usage("--wal-credentials is for s3 stores; tenant '\(name)' stores in \(record.url)")
        }
        let repo = try repository(for: tenant, create: true)
        let fm = FileManager.default
        let dir = PostgresAccess.directory(home, name)
        let spool = PostgresAccess.spool(home, name)
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        try fm.createDirectory(at: spool, withIntermediateDirectories: true)
        let access = PostgresAccess(tenant: name, store: record.url)
        let accessURL = dir.appendingPathComponent("access.json")
        let keyURL = dir.appendingPathComponent("wal.key")
        try writeFileAtomically(Array(try JSONEncoder().encode(access)), to: accessURL.path)
        try writeFileAtomically(Array(repo.keys.wal.fileText.utf8), to: keyURL.path)
        chmod(accessURL.path, 0o644)
        chmod(keyURL.path, 0o640)
        chmod(dir.path, 0o750)
        var prepared = [accessURL.path, keyURL.path, spool.path]
        let credentialsURL = dir.appendingPathComponent(PostgresAccess.credentialsFile)
        if let walCredentialsText {
            try writeFileAtomically(Array(walCredentialsText.utf8), to: credentialsURL.path)
            chmod(credentialsURL.path, 0o640)
            prepared.append(credentialsURL.path)
        } else {
            unlink(credentialsURL.path)
        }
        var todo: [String] = []
        var storeWAL: String? = nil
        if let url = URL(string: record.url), url.scheme == "file" {
            let root = url.path
            let walDir = root + "/" + repo.layout.walPrefix
            try fm.createDirectory(atPath: walDir, withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/.tmp", withIntermediateDirectories: true)
            storeWAL = walDir
            prepared += [walDir, root + "/.tmp"]
            try home.openPath(to: [URL(fileURLWithPath: walDir)], from: URL(fileURLWithPath: root))
        }
        // The home stays closed except for the path to these and the (secret-free) config and policies.
        try home.openPath(to: [dir, spool], readable: [home.configFile, home.path(config.policiesDirectory)])
        if getuid() == 0 {
            guard let pw = getpwnam(osUser) else {
                throw CoreError.usage("no such os user '\(osUser)'", hint: "pass the user PostgreSQL runs as: --os-user NAME")
            }
            let uid = pw.pointee.pw_uid, gid = pw.pointee.pw_gid
            chown(dir.path, 0, gid)
            chown(keyURL.path, 0, gid)
            if walCredentialsText != nil { chown(credentialsURL.path, 0, gid) }
            chown(spool.path, uid, gid)
            chmod(spool.path, 0o700)
            if let walDir = storeWAL, let url = URL(string: record.url) {
                chown(walDir, uid, gid)
                chmod(walDir, 0o700)
                // Temporary files of every put live in the store's .tmp: group-writable and
                // sticky, so the pg user can create its own and remove nothing else.
                chown(url.path + "/.tmp", 0, gid)
                chmod(url.path + "/.tmp", 0o1770)
                // Both users write WAL objects (wal-push, pg stream) under umask 077: objects
                // (created in .tmp) and timeline directories stay readable by the other.
                try shareWithGroup(walDir, gid: gid)
                try shareWithGroup(url.path + "/.tmp", gid: gid)
                chmod(url.path + "/.tmp", 0o3770)
            }
        } else {
            todo.append("chgrp \(osUser) \(dir.path) \(keyURL.path)" + (walCredentialsText != nil ? " \(credentialsURL.path)" : ""))
            todo.append("chown \(osUser) \(spool.path)")
            if let walDir = storeWAL { todo.append("chown \(osUser) \(walDir); chgrp \(osUser) \(walDir)/../../../.tmp; chmod 1770 \(walDir)/../../../.tmp") }
        }
        let homeArg = home.root.path
        let push = "\(binary) --home \(homeArg) pg wal-push \(name) %p"
        let fetch = "\(binary) --home \(homeArg) pg wal-fetch \(name) %f %p"
        let slot = PostgresAccess.defaultSlot(name)
        let settings = ["wal_level": "replica", "archive_mode": "on", "archive_command": push, "restore_command": fetch,
                        "max_wal_senders": "4", "wal_segment_size": "16MB (the default; others are not supported)"]
        let conf = [
            "wal_level = replica",
            "archive_mode = on",
            "archive_command = '\(push)'",
            "archive_timeout = 60s   # the RPO without tresor pg stream \(name); with it, [postgres] stream_flush_interval",
            "max_wal_senders = 4",
            "# restore_command is written by tresor pg restore; for a standby: restore_command = '\(fetch)'",
        ]
        let hba = [
            "# the host tresor pg basebackup connects from, as the DSN's user (REPLICATION privilege):",
            "host replication <dsn user> 127.0.0.1/32 scram-sha-256",
        ]
        return PostgresSetupResult(tenant: name, settings: settings, postgresqlConf: conf, pgHBA: hba, restoreCommand: fetch,
                                   slot: "SELECT pg_create_physical_replication_slot('\(slot)', true);  -- tresor pg stream \(name) creates it when missing",
                                   prepared: prepared, todo: todo,
                                   s3Scope: storeURL.needsCredentials ? PostgresAccess.walScope(record.url, tenant: name) : nil)
    }

    /// `tresor pg basebackup T`.
    public func basebackupPostgres(tenant name: String) throws -> BaseBackupResult {
        let tenant = try self.tenant(name)
        guard let dsn = tenant.pgDSN else {
            throw CoreError.usage("tenant '\(name)' has no postgresql dsn", hint: "register the tenant with tresor tenant add \(name) ... --pg DSN")
        }
        let lock = try TenantLock(home: home, name: name)
        defer { withExtendedLifetime(lock) {} }
        let wallStart = Date()
        let run = try catalog.startRun(kind: "pg-basebackup", tenant: name, at: clock.now())
        do {
            let repo = try repository(for: tenant, create: true)
            let index = try repo.loadIndex()
            let archive = walArchive(repo)
            let backup = try BaseBackup(repository: repo, index: index, policy: policy.backup,
                                        settings: .init(relationChunkBytes: policy.postgres.relationChunkBytes,
                                                        archiveWaitSeconds: policy.postgres.archiveWait.seconds,
                                                        indexCompressionLevel: policy.postgres.indexCompressionLevel),
                                        clock: clock)
            let (id, m) = try backup.run(dsn: dsn, archive: archive)
            let result = BaseBackupResult(tenant: name, snapshot: id.hex, postgres: m.postgres!, files: m.stats.files, bytes: m.stats.bytes,
                                          newBlobs: m.stats.newBlobs, newBytesStored: m.stats.newBytesStored,
                                          seconds: Date().timeIntervalSince(wallStart))
            try catalog.finishRun(id: run, at: clock.now(), status: "ok", detail: json(result))
            return result
        } catch {
            try? catalog.finishRun(id: run, at: clock.now(), status: "failed", detail: json(["error": "\(error)"]))
            throw error
        }
    }

    /// The tenant's WAL archive, opened with the repository's WAL keys (as the operator).
    func walArchive(_ repo: TenantRepository) -> WALArchive {
        WALArchive(store: repo.store, tenant: repo.layout.tenant, keys: repo.keys.wal,
                   compressionLevel: policy.backup.compressionLevel, clock: clock)
    }

    func baseBackups(_ repo: TenantRepository) throws -> [BaseBackupRef] {
        try repo.snapshots().compactMap { s in
            guard s.manifest.kind == "pg-base", let info = s.manifest.postgres else { return nil }
            return BaseBackupRef(id: s.id, info: info)
        }
    }



    /// `tresor pg window T`.
    public func postgresWindow(tenant name: String) throws -> RecoveryWindow {
        let tenant = try self.tenant(name)
        let repo = try repository(for: tenant, create: false)
        let archive = walArchive(repo)
        return RecoveryPlanner.window(backups: try baseBackups(repo), wal: try archive.listWithHeaders())
    }

    /// `tresor pg restore T --pgdata DIR (--target-time | --target-lsn | --latest)`: restores the
    /// newest base backup that ends before the target into a new or empty DIR and configures
    /// recovery (recovery.signal, restore_command through wal-fetch, the target, promote).
    /// Starting the server is left to the operator (or the drill).
    /// `timeline`: nil follows the chosen base backup's timeline; `latest` or a number as given.
    public func restorePostgres(tenant name: String, pgdata: String, target: RecoveryTarget, timeline: String?, binary: String) throws -> PostgresRestoreResult {
        if let t = timeline, t != "latest", UInt32(t) == nil {
            throw CoreError.usage("--timeline must be latest or a timeline number, not '\(t)'")
        }
        let tenant = try self.tenant(name)
        let wallStart = Date()
        let repo = try repository(for: tenant, create: false)
        let archive = walArchive(repo)
        let backups = try baseBackups(repo)
        let window = RecoveryPlanner.window(backups: backups, wal: try archive.listWithHeaders())
        let chosen = try RecoveryPlanner.choose(target: target, backups: backups, window: window, tenant: name)
        let index = try repo.loadIndex()
        let manifest = try repo.loadSnapshot(chosen.id)
        let nodes = try repo.loadTree(manifest, index: index)
        let root = nodes.first { $0.path == "pgdata" }
        let inside = nodes.compactMap { n -> TreeNode? in
            guard n.path.hasPrefix("pgdata/") else { return nil }
            var c = n
            c.path = String(n.path.dropFirst("pgdata/".count))
            return c
        }
        let absolute = URL(fileURLWithPath: pgdata).standardizedFileURL.path
        let report = try DocumentRestore(repository: repo, index: index).restore(nodes: inside, to: absolute)
        guard report.failed.isEmpty else {
            throw CoreError.failed("\(report.failed.count) files of base backup \(chosen.id.short) could not be restored, e.g. \(report.failed.keys.sorted().first!)",
                                   hint: "tresor check \(name) --read-data")
        }
        let conf = absolute + "/postgresql.auto.conf"
        let restoreCommand = "\(binary) --home \(home.root.path) pg wal-fetch \(name) %f %p"
        let existing = FileManager.default.contents(atPath: conf).map { Array($0) } ?? []
        try writeFileAtomically(existing + Array(RecoveryPlanner.recoverySettings(restoreCommand: restoreCommand, target: target,
                                                                                           timeline: timeline ?? String(chosen.info.timeline)).utf8), to: conf)
        try writeFileAtomically([], to: absolute + "/recovery.signal")
        for dir in ["pg_wal", "pg_wal/archive_status"] {
            try? FileManager.default.createDirectory(atPath: absolute + "/" + dir, withIntermediateDirectories: true)
        }
        chmod(absolute, 0o700)
        if getuid() == 0, let root {
            for p in [absolute, conf, absolute + "/recovery.signal", absolute + "/pg_wal", absolute + "/pg_wal/archive_status"] {
                chown(p, root.uid, root.gid)
            }
            chmod(conf, 0o600)
            chmod(absolute + "/recovery.signal", 0o600)
        }
        let targetText: String
        switch target {
        case .time(let t): targetText = TimeFormat.string(t, fractional: true)
        case .lsn(let l): targetText = LSN.format(l)
        case .latest: targetText = "latest"
        }
        let result = PostgresRestoreResult(tenant: name, snapshot: chosen.id.hex, baseBackupEnd: chosen.info.endTime, pgdata: absolute,
                                           target: targetText, files: report.files, bytes: report.bytes,
                                           seconds: Date().timeIntervalSince(wallStart), outcome: .ok)
        let run = try catalog.startRun(kind: "pg-restore", tenant: name, at: clock.now())
        try catalog.finishRun(id: run, at: clock.now(), status: "ok", detail: json(result))
        return result
    }
}

/// The WAL commands as PostgreSQL runs them (as its own OS user): they read the home's config,
/// policies and `HOME/pg/<tenant>/`, never the catalog or the master key.
public struct PostgresWALAccess: Sendable {
    public let archive: WALArchive
    public let spool: WALSpool
    public let policy: Policy

    /// Opens the tenant's WAL archive from the files `tresor pg setup` wrote.
    /// `environmentCredentials`: S3 credentials from the caller's environment, which win over the
    /// file `pg setup --wal-credentials` stored for the PostgreSQL user.
    public static func open(home: Home, configFile: URL?, tenant: String, clock: any Clock,
                            environmentCredentials: S3Credentials? = nil) throws -> PostgresWALAccess {
        try RepositoryLayout.validate(tenant: tenant)
        let configURL = configFile ?? home.configFile
        let config = try Config.load(from: configURL)
        let policy = try Policy.load(directory: home.path(config.policiesDirectory))
        let dir = PostgresAccess.directory(home, tenant)
        guard let accessData = FileManager.default.contents(atPath: dir.appendingPathComponent("access.json").path),
              let access = try? JSONDecoder().decode(PostgresAccess.self, from: accessData), access.tenant == tenant else {
            throw CoreError.usage("tenant '\(tenant)' is not set up for postgresql in \(home.root.path), or this user cannot read \(dir.path)",
                                  hint: "tresor pg setup \(tenant) (as the operator)")
        }
        guard let keyText = try? String(contentsOfFile: dir.appendingPathComponent("wal.key").path, encoding: .utf8) else {
            throw CoreError.usage("cannot read the wal key of tenant '\(tenant)' (\(dir.path)/wal.key)",
                                  hint: "tresor pg setup \(tenant) --os-user USER gives the postgresql user read access")
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
                throw CoreError.usage("no s3 credentials for the wal of tenant '\(tenant)' (\(file) is missing or unreadable to this user)",
                                      hint: "tresor pg setup \(tenant) --wal-credentials FILE (as the operator)")
            }
        }
        let store = try url.open(create: false, credentials: credentials)
        let archive = WALArchive(store: store, tenant: tenant, keys: keys, compressionLevel: policy.backup.compressionLevel, clock: clock)
        return PostgresWALAccess(archive: archive, spool: WALSpool(archive: archive, directory: PostgresAccess.spool(home, tenant).path),
                                 policy: policy)
    }
}

extension Installation {
    /// `tresor pg stream T`: streams the tenant's WAL into its archive until a stop is
    /// requested (SIGTERM or SIGINT), through the physical replication slot `slot` (default
    /// `tresor_<tenant>`, created when missing). One stream per tenant and home (a lock).
    public func streamPostgres(tenant name: String, slot: String?, log: @escaping (WALStreamer.Event) -> Void,
                               shouldStop: @escaping () -> Bool) throws -> WALStreamer.Stats {
        let tenant = try self.tenant(name)
        guard let dsn = tenant.pgDSN else {
            throw CoreError.usage("tenant '\(name)' has no postgresql dsn", hint: "register the tenant with tresor tenant add \(name) ... --pg DSN")
        }
        let slotName = slot ?? PostgresAccess.defaultSlot(name)
        guard !slotName.isEmpty, slotName.count <= 63, slotName.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }) else {
            throw CoreError.usage("replication slot name '\(slotName)' is not valid", hint: "use lower-case letters, digits and _ (at most 63)")
        }
        let lock = try TenantLock(home: home, name: name + ".stream")
        defer { withExtendedLifetime(lock) {} }
        let repo = try repository(for: tenant, create: true)
        let archive = walArchive(repo)
        let run = try catalog.startRun(kind: "pg-stream", tenant: name, at: clock.now())
        let streamer = WALStreamer(dsn: dsn, archive: archive,
                                   settings: .init(slot: slotName, flushInterval: policy.postgres.streamFlushInterval.seconds,
                                                   statusInterval: policy.postgres.streamStatusInterval.seconds),
                                   log: log, shouldStop: shouldStop)
        do {
            let stats = try streamer.run()
            try catalog.finishRun(id: run, at: clock.now(), status: "ok", detail: json(stats))
            return stats
        } catch {
            try? catalog.finishRun(id: run, at: clock.now(), status: "failed", detail: json(["error": "\(error)"]))
            throw error
        }
    }
}
