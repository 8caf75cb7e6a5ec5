import Foundation
import Testing
import TresorCore
import TresorRepository
import TresorStore
import TresorTestSupport

@testable import TresorPostgres

/// A store whose pack writes fail once armed: the storing side of a base backup failing while
/// the server is still streaming.
private final class PackWritesFail: Store, @unchecked Sendable {
    let inner = MemoryStore(name: "packs-fail")
    let armed = Locked(false)
    var location: String { inner.location }
    var capabilities: StoreCapabilities { inner.capabilities }

    func put(_ key: String, bytes: UnsafeRawBufferPointer, options: PutOptions) throws -> Bool {
        if key.contains("/data/"), armed.withLock({ $0 }) { throw StoreError(.io, "injected: the store refused pack \(key)") }
        return try inner.put(key, bytes: bytes, options: options)
    }
    func get(_ key: String, range: Range<Int>?) throws -> [UInt8] { try inner.get(key, range: range) }
    func head(_ key: String) throws -> ObjectInfo? { try inner.head(key) }
    func list(prefix: String) throws -> [ObjectInfo] { try inner.list(prefix: prefix) }
    func delete(keys: [String]) throws { try inner.delete(keys: keys) }
    func abortIncompleteUploads(prefix: String, olderThan age: Double) throws -> Int { 0 }
}

/// The base backup's stream is read on a thread of its own (``BaseBackupReceiver``) while the
/// backup's thread stores what it hands over. When either side fails mid-stream the backup must
/// fail loudly, stop the other side, close its connection (the server then aborts the backup)
/// and record no snapshot.
@Suite(.serialized) struct BaseBackupStreamTests {
    /// A cluster with ~70 MB of relation pages beyond the catalogs, so the stream lasts many
    /// batches and packs, and far more than the socket buffers and the reader's batches hold
    /// when a failure cuts it after a few MiB.
    func cluster(_ label: String) throws -> ScratchCluster {
        let cluster = try ScratchCluster(label: label)
        try cluster.start()
        try cluster.sql("CREATE TABLE filler AS SELECT i, md5(i::text) || md5((i + 1)::text) AS s FROM generate_series(1, 600000) i")
        return cluster
    }

    func backup(_ repo: TemporaryRepository, store: (any Store)? = nil) throws -> BaseBackup {
        let repository =
            try store.map {
                try TenantRepository.open(
                    store: $0, tenant: repo.tenant, master: repo.master, policy: repo.policy.backup, clock: repo.clock, create: true)
            } ?? repo.repository
        return try BaseBackup(
            repository: repository, index: try repository.loadIndex(), policy: repo.policy.backup,
            settings: .init(relationChunkBytes: 16384, archiveWaitSeconds: 1, pageDeltaMaxBytes: 1024), clock: SystemClock())
    }

    func archive(_ repo: TemporaryRepository) -> WALArchive {
        WALArchive(store: repo.store, tenant: repo.tenant, keys: repo.repository.keys.wal, compressionLevel: 3, clock: SystemClock())
    }

    /// The server let go of the backup: no walsender is left and no base backup is in progress;
    /// and it never reached the backup's end (a finished BASE_BACKUP leaves a backup history file
    /// in pg_wal), so the stream was cut, not read to its end in the background.
    func expectServerReleasedTheBackup(_ cluster: ScratchCluster, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let left = try cluster.waitFor(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender') + (SELECT count(*) FROM pg_stat_progress_basebackup)",
            toBe: "0", seconds: 30)
        #expect(left == "0", "the server still holds the backup's walsender or progress row", sourceLocation: sourceLocation)
        let finished = try cluster.sql("SELECT count(*) FROM pg_ls_waldir() WHERE name LIKE '%.backup'")
        #expect(finished == "0", "the server finished the backup it should have been cut off from", sourceLocation: sourceLocation)
    }

    @Test func aServerThatEndsTheStreamMidwayFailsTheBackupAndRecordsNoSnapshot() throws {
        let cluster = try cluster("bbkill")
        let repo = try TemporaryRepository()
        let backup = try backup(repo)
        var terminated = ""
        backup.progress = { bytes, _ in
            // On the storing thread, while the reader thread is still receiving.
            guard terminated.isEmpty, bytes > 8 << 20 else { return }
            terminated = (try? cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'walsender'")) ?? "error"
        }
        let error = #expect(throws: PostgresError.self) { try backup.run(dsn: cluster.dsn, archive: archive(repo)) }
        #expect(terminated == "t", "the walsender was terminated mid-stream")
        #expect(error?.code == .server, "\(String(describing: error))")
        #expect(try repo.reopen().snapshots().isEmpty, "no half backup is recorded")
        try expectServerReleasedTheBackup(cluster)
        try cluster.stop()
    }

    @Test func aStoreThatFailsMidStreamStopsTheReaderClosesTheStreamAndRecordsNoSnapshot() throws {
        let cluster = try cluster("bbstop")
        let repo = try TemporaryRepository()
        let store = PackWritesFail()
        let backup = try backup(repo, store: store)
        backup.progress = { bytes, _ in
            if bytes > 4 << 20 { store.armed.withLock { $0 = true } }
        }
        let error = #expect(throws: StoreError.self) { try backup.run(dsn: cluster.dsn, archive: archive(repo)) }
        #expect(error?.message.contains("injected") == true, "\(String(describing: error))")
        let reopened = try TenantRepository.open(
            store: store, tenant: repo.tenant, master: repo.master, policy: repo.policy.backup, clock: repo.clock, create: false)
        #expect(try reopened.snapshots().isEmpty, "no half backup is recorded")
        try expectServerReleasedTheBackup(cluster)
        try cluster.stop()
    }
}
