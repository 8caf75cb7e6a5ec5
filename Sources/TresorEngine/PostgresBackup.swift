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

/// What `tresor pg basebackup` did.
public struct BaseBackupResult: Codable, Sendable, JobResult {
    public var tenant: String
    public var snapshot: String
    public var postgres: PostgresBackupInfo
    public var files: Int
    public var bytes: UInt64
    public var newBlobs: Int
    public var newBytesStored: UInt64
    /// Pages of relation files unchanged since the previous base backup (referred to, not stored
    /// again), and pages stored.
    public var pagesReused: Int
    public var pagesStored: Int
    /// Changed pages stored as their difference from their base page (counted in neither of
    /// the above), and those differences' bytes before compression.
    public var pagesDelta: Int
    public var deltaBytes: Int
    /// Base chunks of the previous base backup that could not be read, so the pages based on
    /// them were stored whole (nothing is missing from this backup; `check` reports the chunks).
    public var unreadableBaseChunks: [String]
    public var seconds: Double
    /// A base backup that ran to its end is whole (anything less throws); a previous backup's
    /// chunk that could not be read is damage found in the repository (exit 3).
    public var outcome: Outcome { unreadableBaseChunks.isEmpty ? .ok : .problemFound }
}

extension WALStreamer.Stats: JobResult {
    /// A stream that ended without an error stored everything it confirmed.
    public var outcome: Outcome { .ok }
}

/// `tresor pg basebackup`, `pg window`, `pg stream`.
extension Installation {
    /// `tresor pg basebackup T`. `progress` hears the bytes read from the server, the files
    /// finished and the size of the cluster's databases (the estimate of the total; the data
    /// directory holds a little more), on the backup's thread.
    public func basebackupPostgres(
        tenant id: TenantID,
        progress: ((_ bytes: UInt64, _ files: Int, _ estimate: UInt64?) -> Void)? = nil
    ) throws -> BaseBackupResult {
        let name = id.rawValue
        let tenant = try self.tenant(id)
        guard let dsn = tenant.pgDSN else {
            throw CoreError.usage("tenant '\(name)' has no postgresql dsn", hint: Self.addedWithoutHint(id, "--pg DSN"))
        }
        let lock = try lockTenantForWriting(id)
        defer { withExtendedLifetime(lock) {} }
        let wallStart = Date()
        return try run(
            Job(.postgresBaseBackup, tenant: id) { [self] in
                let repo = try repository(for: tenant, create: true)
                let index = try repo.loadIndex()
                let archive = try clusterArchive(repo, dsn: dsn)
                let backup = try BaseBackup(
                    repository: repo, index: index, policy: policy.backup,
                    settings: .init(
                        relationChunkBytes: policy.postgres.relationChunkBytes,
                        archiveWaitSeconds: policy.postgres.archiveWait.seconds,
                        indexCompressionLevel: policy.postgres.indexCompressionLevel,
                        heapCompressionLevel: policy.postgres.heapCompressionLevel,
                        pageDeltaMaxBytes: policy.postgres.pageDeltaMaxBytes),
                    clock: clock)
                if let progress {
                    // Only for the ETA: a server that does not answer leaves the line without one.
                    let rows = try? PGConnection(dsn: dsn).query("SELECT sum(pg_database_size(oid))::bigint FROM pg_database")
                    let estimate = (rows?.first?.first ?? nil).flatMap { UInt64($0) }
                    backup.progress = { progress($0, $1, estimate) }
                }
                let (id, m) = try backup.run(dsn: dsn, archive: archive)
                let result = BaseBackupResult(
                    tenant: name, snapshot: id.hex, postgres: m.postgres!, files: m.stats.files, bytes: m.stats.bytes,
                    newBlobs: m.stats.newBlobs, newBytesStored: m.stats.newBytesStored,
                    pagesReused: backup.pagesReused, pagesStored: backup.pagesStored,
                    pagesDelta: backup.pagesDelta, deltaBytes: backup.deltaBytes, unreadableBaseChunks: backup.unreadableBases,
                    seconds: Date().timeIntervalSince(wallStart))
                return result
            })
    }

    /// The tenant's WAL archive before its cluster is known, opened with the repository's WAL
    /// keys (as the operator).
    func walArchiveRoot(_ repo: TenantRepository) -> WALArchive {
        WALArchive(
            store: repo.store, tenant: repo.layout.tenant, keys: repo.keys.wal,
            compressionLevel: policy.backup.compressionLevel, clock: clock)
    }

    /// The WAL archive of the tenant's current cluster (``WALClusters``).
    func walArchive(_ repo: TenantRepository) throws -> WALArchive {
        try walArchiveRoot(repo).current()
    }

    /// The WAL archive for the cluster the tenant's DSN reaches: its system identifier must be
    /// the tenant's current cluster's (or becomes it, when none is recorded yet or after
    /// `pg setup --new-cluster`).
    func clusterArchive(_ repo: TenantRepository, dsn: String) throws -> WALArchive {
        let rows = try PGConnection(dsn: dsn).query("SELECT system_identifier FROM pg_control_system()")
        guard let text = rows.first?.first ?? nil, let sid = UInt64(text) else {
            throw PostgresError(.server, "the server did not say its system identifier")
        }
        return try walArchiveRoot(repo).bound(to: sid)
    }

    /// The tenant's base backups of its current cluster (those of a cluster replaced with
    /// `pg setup --new-cluster` are kept, but restore and the window do not consider them).
    func baseBackups(_ repo: TenantRepository) throws -> [BaseBackupRef] {
        let current = try walArchive(repo).systemID
        return try repo.snapshots().compactMap { s in
            guard s.manifest.kind == .postgresBase, let info = s.manifest.postgres else { return nil }
            if let current, info.systemID != String(current) { return nil }
            return try BaseBackupRef(id: s.id, info: info)
        }
    }

    /// `tresor pg window T`.
    public func postgresWindow(tenant id: TenantID) throws -> RecoveryWindow {
        let tenant = try self.tenant(id)
        let repo = try repository(for: tenant, create: false)
        let archive = try walArchive(repo)
        return RecoveryPlanner.window(backups: try baseBackups(repo), wal: try archive.listWithHeaders())
    }
}

extension Installation {
    /// `tresor pg stream T`: streams the tenant's WAL into its archive until a stop is
    /// requested (SIGTERM or SIGINT), through the physical replication slot `slot` (default
    /// `tresor_<tenant>`, created when missing). One stream per tenant and home (a lock).
    public func streamPostgres(
        tenant id: TenantID, slot: String?, log: @escaping (WALStreamer.Event) -> Void,
        shouldStop: @escaping () -> Bool
    ) throws -> WALStreamer.Stats {
        let name = id.rawValue
        let tenant = try self.tenant(id)
        guard let dsn = tenant.pgDSN else {
            throw CoreError.usage("tenant '\(name)' has no postgresql dsn", hint: Self.addedWithoutHint(id, "--pg DSN"))
        }
        let slotName = slot ?? PostgresAccess.defaultSlot(id)
        guard !slotName.isEmpty, slotName.count <= 63, slotName.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }) else {
            throw CoreError.usage("replication slot name '\(slotName)' is not valid", hint: "use lower-case letters, digits and _ (at most 63)")
        }
        let lock = try locks.acquire(name + ".stream")
        defer { withExtendedLifetime(lock) {} }
        let repo = try repository(for: tenant, create: true)
        let archive = try clusterArchive(repo, dsn: dsn)
        let streamer = WALStreamer(
            dsn: dsn, archive: archive,
            settings: .init(
                slot: slotName, flushInterval: policy.postgres.streamFlushInterval.seconds,
                statusInterval: policy.postgres.streamStatusInterval.seconds),
            log: log, shouldStop: shouldStop)
        return try run(Job(.postgresStream, tenant: id) { try streamer.run() })
    }
}
