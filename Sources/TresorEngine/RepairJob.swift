import Foundation
import TresorCatalog
import TresorCore
import TresorRepository
import TresorStore

/// What `tresor repair index` did.
public struct RepairIndexResult: Codable, Sendable, JobResult {
    public var tenant: String
    /// Packs in the store.
    public var packs: Int
    /// Damaged index objects, with why; removed once their replacements were written.
    public var damagedIndexObjects: [String: String]
    /// Packs no healthy index object listed, described from their own headers.
    public var packsDescribed: Int
    public var indexObjectsWritten: [String]
    /// Packs whose header is damaged: their blobs cannot be located, so they are not indexed.
    public var damagedPacks: [String: String]
    public var outcome: Outcome
}

/// What `tresor repair snapshots` found and did.
public struct RepairSnapshotsResult: Codable, Sendable, JobResult {
    public var tenant: String
    public var damaged: [Checker.LostSnapshot]
    /// Keys removed (only with `--remove`).
    public var removed: [String]
    public var outcome: Outcome
}

extension Installation {
    /// `tresor repair index T`: rebuilds index objects from pack headers.
    ///
    /// Packs are self-describing (``PackFormat``): every pack no healthy index object lists is
    /// described from its own authenticated header, and new index objects are written for them.
    /// Only then are damaged index objects removed, so an interruption leaves the index no worse
    /// than before. Reads the store itself, not the local cache; runs under the tenant's lock.
    /// A pack whose header is damaged cannot be indexed and is reported (exit 3).
    public func repairIndex(tenant id: TenantID) throws -> RepairIndexResult {
        let name = id.rawValue
        return try repairRun(kind: .repairIndex, tenant: id) { [self] store, repo in
            let (index, damaged) = try repo.loadIndexReportingDamage()
            let indexed = index.packSizes
            var unindexed: [ObjectID: Int] = [:]
            var packs = 0
            for o in try store.list(prefix: repo.layout.packsPrefix) {
                guard let id = RepositoryLayout.id(fromKey: o.key) else { continue }
                packs += 1
                if indexed[id] == nil { unindexed[id] = o.size }
            }
            let (described, badPacks) = try repo.describePacksFromHeaders(unindexed)
            var written: [String] = []
            // Index objects of a bounded size, like those a backup writes.
            let perObject = 1000
            for start in stride(from: 0, to: described.count, by: perObject) {
                let batch = Array(described[start..<min(start + perObject, described.count)])
                written.append(try repo.writeIndex(IndexFile(packs: batch), level: policy.backup.compressionLevel).hex)
            }
            if !damaged.isEmpty { try store.deleteMany(damaged.map(\.key)) }
            return RepairIndexResult(
                tenant: name, packs: packs, damagedIndexObjects: Dictionary(damaged.map { ($0.key, $0.why) }, uniquingKeysWith: { a, _ in a }),
                packsDescribed: described.count, indexObjectsWritten: written,
                damagedPacks: Dictionary(badPacks.map { ($0.key.hex, $0.value) }, uniquingKeysWith: { a, _ in a }),
                outcome: badPacks.isEmpty ? .ok : .problemFound)
        }
    }

    /// `tresor repair snapshots T [--remove]`: names every damaged snapshot object with what it
    /// covered (from the catalog), and removes them only with `remove`. Without it, damage found
    /// is exit 3 and nothing changes; with it, the removed keys are listed.
    public func repairSnapshots(tenant id: TenantID, remove: Bool) throws -> RepairSnapshotsResult {
        let name = id.rawValue
        return try repairRun(kind: .repairSnapshots, tenant: id) { [self] store, repo in
            var report = Checker.Report()
            report.damagedSnapshots = try repo.snapshotsReportingDamage().damaged.map { Checker.LostSnapshot(key: $0.key, why: $0.why) }
            lostSnapshotCoverage(tenant: id, into: &report)
            var removed: [String] = []
            if remove && !report.damagedSnapshots.isEmpty {
                removed = report.damagedSnapshots.map(\.key)
                try store.deleteMany(removed)
            }
            return RepairSnapshotsResult(
                tenant: name, damaged: report.damagedSnapshots, removed: removed,
                outcome: report.damagedSnapshots.isEmpty || remove ? .ok : .problemFound)
        }
    }

    /// Runs a repair under the tenant's lock, recorded in the catalog, on the repository in the
    /// tenant's primary store opened without the local cache (a repair judges the store itself).
    private func repairRun<R: JobResult>(
        kind: RunKind, tenant id: TenantID,
        _ body: @escaping (any Store, TenantRepository) throws -> R
    ) throws -> R {
        let t = try tenant(id)
        let lock = try lockTenantForWriting(id)
        defer { withExtendedLifetime(lock) {} }
        return try run(
            Job(kind, tenant: id) { [self] in
                let store = try openStore(for: t, id: id, storeName: nil, create: false, cache: false)
                let repo = try TenantRepository.open(
                    store: store, tenant: id, master: try masterKey(),
                    previousMasters: try previousMasterKeys(), policy: policy.backup,
                    clock: clock, create: false)
                return try body(store, repo)
            })
    }
}
