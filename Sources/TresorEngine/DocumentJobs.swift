import Foundation
import TresorCatalog
import TresorCore
import TresorDocuments
import TresorRepository

/// A snapshot as listed to users.
public struct SnapshotSummary: Codable, Sendable {
    public var id: String
    public var short: String
    public var time: String
    public var kind: SnapshotKind
    public var roots: [String]
    public var files: Int
    public var bytes: UInt64
    public var newBytesStored: UInt64
    public var changedDuringBackup: [String]

    init(id: ObjectID, manifest m: SnapshotManifest) {
        self.id = id.hex
        short = id.short
        time = m.time
        kind = m.kind
        roots = m.roots.map(\.path)
        files = m.stats.files
        bytes = m.stats.bytes
        newBytesStored = m.stats.newBytesStored
        changedDuringBackup = m.stats.changedDuringBackup
    }
}

/// What `docs backup` did.
public struct BackupResult: Codable, Sendable, JobResult {
    public var tenant: String
    public var snapshot: SnapshotSummary
    public var parent: String?
    public var filesRead: Int
    public var bytesRead: UInt64
    public var newBlobs: Int
    public var skipped: [String]
    public var seconds: Double
    public var outcome: Outcome
}

/// What `docs restore` did.
public struct RestoreResult: Codable, Sendable, JobResult {
    public var tenant: String
    public var snapshot: String
    public var target: String
    /// The paths asked for (`--path`), shown escaped; nil for the whole snapshot.
    public var paths: [String]? = nil
    public var report: DocumentRestore.Report
    public var seconds: Double
    public var outcome: Outcome
}

extension Installation {
    /// `tresor docs backup T`: one snapshot of all the tenant's document roots.
    public func backupDocuments(tenant id: TenantID, progress: ((DocumentBackup.Progress) -> Void)? = nil) throws -> BackupResult {
        let name = id.rawValue
        let tenant = try self.tenant(id)
        guard !tenant.docRoots.isEmpty else {
            throw CoreError.usage("tenant '\(name)' has no document roots", hint: Self.addedWithoutHint(id, "--docs DIR"))
        }
        let lock = try lockTenantForWriting(id)
        defer { withExtendedLifetime(lock) {} }
        let wallStart = Date()
        return try run(
            Job(.documentsBackup, tenant: id) { [self] in
                let repo = try repository(for: tenant, id: id, create: true)
                // Under the lock, any multipart upload under the tenant's prefix is a killed run's orphan.
                removeOrphanUploads(tenant: repo.tenant, store: repo.store)
                let index = try repo.loadIndex()
                let roots = DocumentBackup.roots(for: tenant.docRoots)
                // The parent is the newest documents snapshot over the same roots.
                let parent = try repo.snapshots().last { $0.manifest.kind == .documents && $0.manifest.roots.map(\.path) == tenant.docRoots }
                let parentTree = try parent.map { try TreeNodeStream(repository: repo, index: index, manifest: $0.manifest) }
                let backup = try DocumentBackup(repository: repo, index: index, policy: policy.backup, clock: clock, progress: progress)
                let (snapshotID, manifest) = try backup.run(roots: roots, parentID: parent?.id, parent: parentTree.map { t in { try t.next() } })
                return BackupResult(
                    tenant: name, snapshot: SnapshotSummary(id: snapshotID, manifest: manifest), parent: parent?.id.hex,
                    filesRead: manifest.stats.filesRead, bytesRead: manifest.stats.bytesRead, newBlobs: manifest.stats.newBlobs,
                    skipped: manifest.stats.skipped, seconds: Date().timeIntervalSince(wallStart),
                    outcome: manifest.stats.skipped.isEmpty ? .ok : .problemFound)
            })
    }

    /// `tresor snapshots T`, oldest first.
    public func snapshots(tenant id: TenantID, store storeName: String? = nil) throws -> [SnapshotSummary] {
        let tenant = try self.tenant(id)
        let repo = try repository(for: tenant, storeName: storeName, create: false)
        return try repo.snapshots().map { SnapshotSummary(id: $0.id, manifest: $0.manifest) }
    }

    /// Picks a snapshot by `latest`, an id or id prefix (4+ hex digits), or a date/time (the newest
    /// snapshot at or before it; a bare date means the end of that day, UTC).
    public static func selectSnapshot(
        _ selector: String, from all: [(id: ObjectID, manifest: SnapshotManifest)], tenant: String
    ) throws -> (id: ObjectID, manifest: SnapshotManifest) {
        let docs = all.filter { $0.manifest.kind == .documents }
        if selector == "latest" {
            guard let last = docs.last else {
                throw CoreError.usage("tenant '\(tenant)' has no document snapshots", hint: "tresor docs backup \(tenant)")
            }
            return last
        }
        let lower = selector.lowercased()
        if lower.count >= 4, lower.allSatisfy(\.isHexDigit) {
            let matches = docs.filter { $0.id.hex.hasPrefix(lower) }
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 { throw CoreError.usage("snapshot prefix '\(selector)' is ambiguous", hint: "give more digits") }
        }
        if var when = TimeFormat.parse(selector) {
            if selector.count == 10 { when = when.addingTimeInterval(86400 - 0.001) }
            if let s = try docs.last(where: { try $0.manifest.checkedDate() <= when }) { return s }
            throw CoreError.usage("tenant '\(tenant)' has no snapshot at or before \(selector)", hint: "tresor snapshots \(tenant)")
        }
        throw CoreError.usage("no snapshot '\(selector)' for tenant '\(tenant)'", hint: "use latest, an id from tresor snapshots \(tenant), or a date")
    }
    // `docs restore` (whole snapshots and chosen paths) is in DocumentBrowse.swift.
}

func json<T: Encodable>(_ value: T) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return (try? e.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
}
