import Foundation
import TresorCore
import TresorRepository
import TresorStore

/// Which PostgreSQL clusters (database system identifiers) a tenant's WAL archive has held, in
/// order; the last is the current one.
///
/// Stored as one object, `<tenant>/wal/clusters`, sealed with the tenant's WAL keys like a WAL
/// file: `wal-push` runs as the PostgreSQL OS user with only those keys and (on S3) a key limited
/// to the WAL prefix, so the record lives where that user can read and, on first use, write it.
/// The first WAL file archived defines the cluster (learn on first push; `pg basebackup` and
/// `pg stream` learn it from the server). A WAL file from any other system is refused (exit 1,
/// naming both identifiers) until `tresor pg setup T --new-cluster` marks the tenant as waiting
/// for a re-created cluster: the next WAL file then defines it, and its WAL goes under
/// `wal/<system id>/`, so the new cluster's segment names never collide with the old one's and
/// the old cluster's WAL and base backups stay as they were.
public struct WALClusters: Codable, Sendable, Equatable {
    public struct Cluster: Codable, Sendable, Equatable {
        /// Decimal, as PostgreSQL prints it (`pg_control_system()`, `IDENTIFY_SYSTEM`).
        public var systemID: String
        /// Below the tenant's WAL prefix: "" for the first cluster, `<system id>/` for later ones.
        public var directory: String
    }

    public var clusters: [Cluster]
    /// Set by `pg setup --new-cluster` until the re-created cluster's first WAL arrives.
    public var awaitingNew: Bool

    public var current: Cluster? { awaitingNew ? nil : clusters.last }

    static let objectName = "clusters"
}

extension WALArchive {
    var clustersKey: String { layout.walPrefix + WALClusters.objectName }

    /// The tenant's cluster record; nil when no WAL was archived since clusters were recorded.
    public func clusters() throws -> WALClusters? {
        let sealed: [UInt8]
        do {
            sealed = try store.get(clustersKey)
        } catch let e as StoreError where e.code == .notFound {
            return nil
        }
        let plain = try WALObject.open(sealed, name: WALClusters.objectName, keys: keys)
        do {
            return try JSONDecoder().decode(WALClusters.self, from: Data(plain))
        } catch {
            throw PostgresError(.failed, "the cluster record of tenant '\(layout.tenant)' (\(clustersKey)) cannot be read", cause: error)
        }
    }

    /// Writes the record (replacing it unless `ifAbsent`); false when `ifAbsent` and one exists.
    @discardableResult
    public func writeClusters(_ record: WALClusters, ifAbsent: Bool) throws -> Bool {
        let bytes = try JSONEncoder().encode(record)
        return try Array(bytes).withUnsafeBytes { plain in
            try WALObject.withSealed(plain, name: WALClusters.objectName, keys: keys, level: compressionLevel, pushedAt: clock.now()) { sealed, _ in
                try store.put(clustersKey, bytes: sealed, ifAbsent: ifAbsent)
            }
        }
    }

    /// The archive of the tenant's current cluster (the last one recorded; while
    /// `pg setup --new-cluster` waits for the new one, the previous). Without a record, the
    /// tenant's first (and only) cluster's.
    public func current() throws -> WALArchive {
        guard let last = try clusters()?.clusters.last else { return self }
        return WALArchive(self, cluster: last)
    }

    /// The archive for WAL of database system `systemID`: the current cluster's when it is that
    /// system; the first recorded when the tenant has none yet, or the new one after
    /// `pg setup --new-cluster`. Refuses any other system, naming both identifiers.
    public func bound(to systemID: UInt64) throws -> WALArchive {
        if self.systemID == systemID { return self }
        let sid = String(systemID)
        for _ in 0..<3 {
            guard var record = try clusters() else {
                let first = WALClusters.Cluster(systemID: sid, directory: "")
                if try writeClusters(WALClusters(clusters: [first], awaitingNew: false), ifAbsent: true) {
                    return WALArchive(self, cluster: first)
                }
                continue  // another process recorded a cluster first: judge against it
            }
            let replaced = PostgresError(
                .conflict,
                "this wal belongs to database system \(sid), which tenant '\(layout.tenant)' archived before it was replaced (tresor pg setup --new-cluster); refusing it",
                hint: "stop archive_command on the old cluster")
            if let current = record.current {
                if current.systemID != sid && record.clusters.contains(where: { $0.systemID == sid }) { throw replaced }
                guard current.systemID == sid else {
                    throw PostgresError(
                        .conflict,
                        "this wal belongs to database system \(sid), but tenant '\(layout.tenant)' archives database system \(current.systemID); refusing it",
                        hint:
                            "point archive_command of each cluster at its own tenant; if the cluster was re-created on purpose: tresor pg setup \(layout.tenant) --new-cluster (as the operator)"
                    )
                }
                return WALArchive(self, cluster: current)
            }
            guard !record.clusters.contains(where: { $0.systemID == sid }) else { throw replaced }
            let new = WALClusters.Cluster(systemID: sid, directory: sid + "/")
            record.clusters.append(new)
            record.awaitingNew = false
            try writeClusters(record, ifAbsent: false)
            return WALArchive(self, cluster: new)
        }
        throw PostgresError(.failed, "the cluster record of tenant '\(layout.tenant)' keeps changing; try again")
    }
}
