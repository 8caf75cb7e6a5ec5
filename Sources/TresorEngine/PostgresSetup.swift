import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorDocuments
import TresorPostgres
import TresorRepository
import TresorStore

#if canImport(Glibc)
import Glibc
#endif

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

    static func directory(_ home: Home, _ tenant: TenantID) -> URL { home.root.appendingPathComponent("pg/\(tenant.rawValue)") }
    static func spool(_ home: Home, _ tenant: TenantID) -> URL { home.root.appendingPathComponent("spool/pg/\(tenant.rawValue)") }
    /// The S3 credentials file of the PostgreSQL OS user, in ``directory(_:_:)``.
    static let credentialsFile = "s3-credentials"

    /// What the PostgreSQL OS user's S3 key must be allowed (and nothing more).
    /// `storeURL` is the tenant's store, already parsed by the caller (a store without
    /// credentials, such as a local one, gets the bare key prefix).
    static func walScope(_ storeURL: StoreURL, tenant: TenantID) -> String {
        guard case .s3(let location) = storeURL else { return "tenants/\(tenant.rawValue)/wal/" }
        let prefix = location.prefix.isEmpty ? "" : location.prefix + "/"
        let walPrefix = "\(prefix)tenants/\(tenant.rawValue)/wal/"
        // wal-push needs only PutObject (+ PutObjectAcl for the owner ACL it sends); GetObject reads
        // a duplicate's header and serves wal-fetch; ListBucket limited to the prefix lets a 403
        // for a missing key be told apart from a refusal (wal-fetch's "not archived").
        return "s3:PutObject, s3:PutObjectAcl and s3:GetObject on s3://\(location.bucket)/\(walPrefix)* (arn:aws:s3:::\(location.bucket)/\(walPrefix)*); "
            + "s3:ListBucket on arn:aws:s3:::\(location.bucket) with condition StringLike s3:prefix \(walPrefix)*"
    }

    /// The replication slot `pg stream` uses unless told otherwise: `tresor_<tenant>` when the
    /// tenant name is already a valid slot name (lower-case letters, digits, `_`); otherwise the
    /// name with every other character (`-`) as `_`, followed by a hash of the real name, so
    /// tenants `a-b` and `a_b` never share a slot (one would confirm WAL to the server that only
    /// the other stored).
    static func defaultSlot(_ id: TenantID) -> String {
        let tenant = id.rawValue
        let plain = tenant.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
        if plain && tenant.count <= 56 { return "tresor_" + tenant }
        let cleaned = String(tenant.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" }.prefix(40))
        let hash = SHA256.hash(Array(tenant.utf8)).hex.prefix(8)
        return "tresor_\(cleaned)_\(hash)"
    }
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
    /// The database system whose WAL the tenant archives, or what happens next.
    public var cluster: String
}

/// `tresor pg setup`.
extension Installation {
    /// `tresor pg setup T`: writes the WAL key file and access description the PostgreSQL OS user
    /// reads, prepares the spool and (for a local store) the WAL directory it writes, and returns
    /// the settings the server needs.
    /// `walCredentials`: for an S3 store, an AWS-style credentials file for the PostgreSQL OS
    /// user (a key that may only read, list and write the tenant's WAL prefix); required there.
    /// `newCluster`: the tenant's cluster was re-created on purpose (new system identifier): the
    /// next WAL archived defines the tenant's cluster; the old cluster's WAL and base backups
    /// are kept where they are (``WALClusters``).
    public func setupPostgres(
        tenant id: TenantID, osUser: String, binary: String, walCredentials: String? = nil,
        newCluster: Bool = false
    ) throws -> PostgresSetupResult {
        let name = id.rawValue
        let tenant = try self.tenant(id)
        let record = try storeRecord(tenant.store)
        let storeURL = try StoreURL.parse(record.url)
        var walCredentialsText: String? = nil
        if storeURL.needsCredentials {
            guard let walCredentials else {
                throw CoreError.usage(
                    "tenant '\(name)' stores in s3, so archive_command (run as \(osUser)) needs s3 credentials of its own",
                    hint:
                        "tresor pg setup \(name) --wal-credentials FILE (an AWS-style file whose key may read, list and write only \(PostgresAccess.walScope(storeURL, tenant: id)))"
                )
            }
            _ = try S3Credentials.load(file: walCredentials)
            walCredentialsText = try String(contentsOfFile: walCredentials, encoding: .utf8)
        } else if walCredentials != nil {
            throw CoreError.usage("--wal-credentials is for s3 stores; tenant '\(name)' stores in \(record.url)")
        }
        let repo = try repository(for: tenant, create: true)
        let fm = FileManager.default
        let dir = PostgresAccess.directory(home, id)
        let spool = PostgresAccess.spool(home, id)
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
        let walRoot = walArchiveRoot(repo)
        var clusterText: String
        if var record = try walRoot.clusters(), let last = record.clusters.last {
            if newCluster {
                record.awaitingNew = true
                try walRoot.writeClusters(record, ifAbsent: false)
                clusterText =
                    "waiting for the re-created cluster: the next wal archived defines it; the wal and base backups of database system \(last.systemID) are kept"
            } else if record.awaitingNew {
                clusterText = "waiting for the re-created cluster (replacing database system \(last.systemID))"
            } else {
                clusterText = "database system \(last.systemID)"
            }
        } else {
            clusterText = "not recorded yet: the first wal archived defines it" + (newCluster ? " (--new-cluster has nothing to replace)" : "")
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
        let push = walCommand(binary: binary, "wal-push", tenant: id, "%p")
        let fetch = walCommand(binary: binary, "wal-fetch", tenant: id, "%f", "%p")
        let slot = PostgresAccess.defaultSlot(id)
        let settings = [
            "wal_level": "replica", "archive_mode": "on", "archive_command": push, "restore_command": fetch,
            "max_wal_senders": "4", "wal_segment_size": "16MB (the default; others are not supported)",
        ]
        let conf = [
            "wal_level = replica",
            "archive_mode = on",
            "archive_command = \(confQuoted(push))",
            "archive_timeout = 60s   # the RPO without tresor pg stream \(name); with it, [postgres] stream_flush_interval",
            "max_wal_senders = 4",
            "# restore_command is written by tresor pg restore; for a standby: restore_command = \(confQuoted(fetch))",
        ]
        let hba = [
            "# the host tresor pg basebackup connects from, as the DSN's user (REPLICATION privilege):",
            "host replication <dsn user> 127.0.0.1/32 scram-sha-256",
        ]
        return PostgresSetupResult(
            tenant: name, settings: settings, postgresqlConf: conf, pgHBA: hba, restoreCommand: fetch,
            slot: "SELECT pg_create_physical_replication_slot('\(slot)', true);  -- tresor pg stream \(name) creates it when missing",
            prepared: prepared, todo: todo,
            s3Scope: storeURL.needsCredentials ? PostgresAccess.walScope(storeURL, tenant: id) : nil,
            cluster: clusterText)
    }
}

extension Installation {
    /// A command line PostgreSQL runs through the shell (archive_command, restore_command):
    /// every word shell-quoted (and `%` doubled), with `--config` when this installation was
    /// opened with one.
    func walCommand(binary: String, _ verb: String, tenant: TenantID, _ placeholders: String...) -> String {
        var words = [binary, "--home", home.root.path]
        if let configFile { words += ["--config", configFile.path] }
        words += ["pg", verb, tenant.rawValue]
        // PostgreSQL replaces %p, %f, %r and %%: a % of our own is written %%.
        return (words.map { shellQuoted($0.replacingOccurrences(of: "%", with: "%%")) } + placeholders).joined(separator: " ")
    }
}
