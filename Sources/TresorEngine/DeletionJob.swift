import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorEvidence
import TresorPostgres
import TresorStore

/// Where a tenant stands in deletion, as `tresor deletion run` prints it (the raw value, in
/// text and JSON alike).
public enum DeletionState: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// The contract has not ended: nothing to decide (never printed).
    case running
    /// The contract ended less than the policy's delay ago.
    case notDue = "not-due"
    /// Past the deadline and not on hold: the deletion runs (or has begun).
    case due
    /// Past the deadline but on legal hold.
    case held
    /// A dry run stopped at the plan (the footprint).
    case planned
    case deleted
    /// Something of the footprint is still there after the deletion.
    case verificationFailed = "verification-failed"
    /// A versioned store whose versions could not be listed or deleted.
    case versionsLeft = "versions-left"

    public var description: String { rawValue }
}

/// What `tresor deletion run` did or would do for one tenant.
public struct DeletionTenantResult: Codable, Sendable {
    public var tenant: String
    public var state: DeletionState
    public var contractEnd: Date?
    public var deadline: Date?
    public var footprint: TenantFootprint?
    /// Removed per place (`store:NAME`, `keys:NAME`, `wal-key`, `catalog`, `path:KIND`, `slot`).
    public var removed: [String: DeletionCount]
    public var problems: [String]
    public var certificateSeq: Int64?
}

public struct DeletionCount: Codable, Sendable, Equatable {
    public var count: Int
    public var bytes: Int
}

public struct DeletionRunResult: Codable, Sendable {
    public var asOf: Date
    public var dryRun: Bool
    public var tenants: [DeletionTenantResult]
    public var outcome: Outcome { tenants.contains { !$0.problems.isEmpty } ? .problemFound : .ok }
}

/// The due rule, pure: a tenant is due when its contract ended at least the policy's delay ago
/// and it is not on hold. A deletion already past its first destructive step is always finished.
public enum DeletionRule {
    public static func deadline(contractEnd: Date, delay: PolicyDuration) -> Date {
        contractEnd.addingTimeInterval(delay.seconds)
    }

    /// `running`, `notDue`, `due` or `held`.
    public static func state(contractEnd: Date?, hold: String?, delay: PolicyDuration, now: Date) -> DeletionState {
        guard let end = contractEnd else { return .running }
        if now < deadline(contractEnd: end, delay: delay) { return .notDue }
        return hold == nil ? .due : .held
    }
}

extension Installation {
    /// `tresor deletion run [--dry-run]`. For each due tenant: record the plan; destroy its key
    /// envelopes in every store and its WAL key (crypto-shredding); delete every object, row and
    /// path of its footprint and its replication slot; verify that nothing is left; append the
    /// certificate. Each step is recorded in the catalog before the next starts, so a rerun after
    /// a crash resumes where it stopped. `crashAfter` exists for tests: it is called after each
    /// recorded step with that step.
    ///
    /// Each tenant's deletion holds the tenant's lock (waiting up to `lockWait` seconds for a
    /// running backup to finish), so a backup never writes while its data is being destroyed, and
    /// a backup that starts later finds the deletion and refuses (``lockTenantForWriting(_:)``).
    public func runDeletion(dryRun: Bool, lockWait: Double = 3600, crashAfter: ((DeletionStep) -> Void)? = nil) throws -> DeletionRunResult {
        guard !dryRun else { return try deletionPass(dryRun: true, lockWait: lockWait, crashAfter: nil) }
        return try recordedRun(.deletion) {
            try deletionPass(dryRun: false, lockWait: lockWait, crashAfter: crashAfter)
        } outcome: {
            $0.outcome
        }
    }

    /// Runs `body` as a catalog run of `kind` (no tenant: a run outlives the tenants it deleted),
    /// recording its result, or its error as a failed run.
    func recordedRun<R: Encodable>(_ kind: RunKind, _ body: () throws -> R, outcome: (R) -> Outcome) throws -> R {
        try recordRun(kind, tenant: nil, body, status: { RunStatus(outcome($0)) }, detail: { $0 })
    }

    private func deletionPass(dryRun: Bool, lockWait: Double, crashAfter: ((DeletionStep) -> Void)?) throws -> DeletionRunResult {
        let now = clock.now()
        let delay = policy.deletion.delayAfterContractEnd
        var results: [DeletionTenantResult] = []
        var resumable = Set(try catalog.deletions().filter { $0.step < .certified }.map(\.tenant))
        for t in try catalog.tenants() {
            // A tenant with a row is decided here (a planned deletion under a new hold waits);
            // the loop below is only for deletions whose tenant row is already gone.
            resumable.remove(t.name)
            var r = DeletionTenantResult(
                tenant: t.name, state: .running, contractEnd: t.contractEnd,
                deadline: t.contractEnd.map { DeletionRule.deadline(contractEnd: $0, delay: delay) },
                footprint: nil, removed: [:], problems: [])
            let existing = try catalog.deletion(tenant: t.name)
            let started = existing.map { $0.step > .planned } ?? false
            r.state = started ? .due : DeletionRule.state(contractEnd: t.contractEnd, hold: t.holdReason, delay: delay, now: now)
            guard r.state == .due else {
                if r.state != .running { results.append(r) }
                continue
            }
            let footprint = try TenantFootprint.of(t, catalog: catalog, home: home)
            r.footprint = footprint
            // A dry run stops at the plan, the footprint: most of a deletion is no store operation
            // (the replication slot, files under the home, catalog rows, the certificate), so a
            // DryRunStore could hold back only part of it and the rest would happen.
            if dryRun {
                r.state = .planned
                results.append(r)
                continue
            }
            let id = try t.id
            let lock = try waitForLock(id, seconds: lockWait)
            defer { withExtendedLifetime(lock) {} }
            let plan = String(decoding: try JSONEncoder().encode(footprint), as: UTF8.self)
            _ = try catalog.beginDeletion(tenant: t.name, plan: plan, at: now)
            crashAfter?(.planned)
            results.append(try finishDeletion(id, now: now, crashAfter: crashAfter))
        }
        // Deletions whose tenant row is already gone (a crash after the catalog rows went).
        for name in resumable.sorted() where !dryRun {
            let id = try TenantID(name)
            // Past its data step the lock file is gone with the rest; taking the lock would
            // create it again and fail the verification. No writer gets past the missing row.
            let lock = try catalog.deletion(tenant: name).map { $0.step < .dataDeleted } == true ? try waitForLock(id, seconds: lockWait) : nil
            defer { withExtendedLifetime(lock) {} }
            results.append(try finishDeletion(id, now: now, crashAfter: crashAfter))
        }
        return DeletionRunResult(asOf: now, dryRun: dryRun, tenants: results)
    }

    private func finishDeletion(_ id: TenantID, now: Date, crashAfter: ((DeletionStep) -> Void)?) throws -> DeletionTenantResult {
        let name = id.rawValue
        guard var record = try catalog.deletion(tenant: name) else {
            throw CoreError.failed("the deletion of '\(name)' is not recorded")
        }
        let footprint = try JSONDecoder().decode(TenantFootprint.self, from: Data(record.plan.utf8))
        var removed = try JSONDecoder().decode([String: DeletionCount].self, from: Data(record.report.utf8))
        var result = DeletionTenantResult(
            tenant: name, state: .deleted, contractEnd: footprint.contractEnd, deadline: nil,
            footprint: footprint, removed: [:], problems: [])
        func save(_ step: DeletionStep, finished: Date? = nil) throws {
            let text = String(decoding: try JSONEncoder().encode(removed), as: UTF8.self)
            try catalog.updateDeletion(tenant: name, step: step, report: text, finishedAt: finished)
            record.step = step
            crashAfter?(step)
        }
        func add(_ place: String, _ count: Int, _ bytes: Int) {
            let old = removed[place] ?? DeletionCount(count: 0, bytes: 0)
            removed[place] = DeletionCount(count: old.count + count, bytes: old.bytes + bytes)
        }

        if record.step == .planned {
            // Fingerprints are taken from the live documents before anything else goes, so the
            // sweeper can recognise copies later (docs/deletion.md).
            if let t = try catalog.tenant(named: name) {
                try TenantFingerprints.record(tenant: t, home: home, now: now)
            }
            for s in footprint.stores {
                let store = try openStore(url: s.url, create: false)
                guard let gone = try purge(store, storeName: s.name, prefix: s.keysPrefix, into: &result) else { return result }
                add("keys:\(s.name)", gone.count, gone.bytes)
            }
            let walKeySize = fileSize(footprint.walKey)
            if let size = walKeySize {
                try removeItem(footprint.walKey)
                add("wal-key", 1, size)
            }
            try save(.keysDestroyed)
        }

        if record.step == .keysDestroyed {
            if let dsn = footprint.pgDSN {
                switch dropSlot(footprint.slot, dsn: dsn, passfile: footprint.paths.first { $0.kind == .secrets }?.path) {
                case .dropped: add("slot", 1, 0)
                case .absent: break
                case .unreachable(let why): result.problems.append("replication slot \(footprint.slot) not checked: \(why)")
                case .failed(let why):
                    throw CoreError.failed(
                        "cannot drop replication slot \(footprint.slot) of '\(name)': \(why)",
                        hint: "drop it on the tenant's server, then rerun tresor deletion run")
                }
            }
            for s in footprint.stores {
                let store = try openStore(url: s.url, create: false)
                guard let gone = try purge(store, storeName: s.name, prefix: s.prefix, into: &result) else { return result }
                let aborted = try store.abortIncompleteUploads(prefix: s.prefix, olderThan: 0)
                add("store:\(s.name)", gone.count + aborted, gone.bytes)
            }
            for p in footprint.paths {
                let (files, bytes) = try removeTree(p.path)
                if files > 0 { add("path:\(p.kind)", files, bytes) }
            }
            add("catalog", try catalog.purgeTenantRows(name), 0)
            try save(.dataDeleted)
        }

        // Verification: read everything back.
        var proof: [String: EvidenceValue] = [:]
        for s in footprint.stores {
            let store = try openStore(url: s.url, create: false)
            let left = try store.list(prefix: s.prefix).count
            proof["store:\(s.name)"] = .string("list \(s.prefix): \(left) objects")
            if left > 0 { result.problems.append("store \(s.name) still lists \(left) objects under \(s.prefix)") }
            if let versions = store.versions, let state = try versionState(versions, storeName: s.name, into: &result), state != .off {
                do {
                    let kept = try versions.listVersions(prefix: s.prefix)
                    proof["versions:\(s.name)"] = .string("list-versions \(s.prefix) (versioning \(state.rawValue)): \(kept.count) versions and delete markers")
                    if !kept.isEmpty { result.problems.append("store \(s.name) still lists \(kept.count) versions or delete markers under \(s.prefix)") }
                } catch {
                    result.problems.append("store \(s.name) has versioning \(state.rawValue) and its versions under \(s.prefix) cannot be listed: \(error)")
                }
            }
        }
        let rows = try catalog.tenantRowCount(name)
        proof["catalog"] = .string("\(rows) rows name the tenant")
        if rows > 0 { result.problems.append("the catalog still holds \(rows) rows naming '\(name)'") }
        let remaining =
            footprint.paths.filter { FileManager.default.fileExists(atPath: $0.path) }.map(\.path)
            + (FileManager.default.fileExists(atPath: footprint.walKey) ? [footprint.walKey] : [])
        proof["paths"] = .string("\(footprint.paths.count + 1) footprint paths checked, \(remaining.count) present")
        for p in remaining { result.problems.append("\(p) still exists") }
        result.removed = removed
        guard result.problems.filter({ !$0.hasPrefix("replication slot") }).isEmpty else {
            result.state = .verificationFailed
            return result
        }

        if record.step == .dataDeleted {
            // A crash between the append and the catalog update must not certify twice.
            let earlier = try listEvidence(tenant: id, kind: .deletion, since: nil).entries.last
            let seq: Int64
            if let earlier {
                seq = earlier.seq
            } else {
                var places: [String: EvidenceValue] = [:]
                for (k, v) in removed { places[k] = .object(["count": .int(Int64(v.count)), "bytes": .int(Int64(v.bytes))]) }
                seq = try recordEvidence(
                    kind: .deletion, tenant: id,
                    payload: [
                        "deleted_at": .string(TimeFormat.string(now)),
                        "started_at": .string(TimeFormat.string(record.startedAt)),
                        "contract_end": footprint.contractEnd.map { .string(TimeFormat.string($0)) } ?? .null,
                        "deadline": footprint.contractEnd.map {
                            .string(TimeFormat.string(DeletionRule.deadline(contractEnd: $0, delay: policy.deletion.delayAfterContractEnd)))
                        } ?? .null,
                        "policy": .object(["delay_after_contract_end": .string(policy.deletion.delayAfterContractEnd.description)]),
                        "removed": .object(places),
                        "verification": .object(proof),
                        "notes": .array(result.problems.map { .string($0) }),
                    ]
                ).record.seq
            }
            result.certificateSeq = seq
            try save(.certified, finished: now)
        }
        return result
    }

    /// Deletes every object under `prefix`; on a store that keeps versions (versioning enabled or
    /// suspended), every version and delete marker under it instead, since deleting a key there
    /// only adds a marker and keeps the bytes. Returns how many and how many bytes; nil, with the
    /// problem in `result`, when the store keeps versions and they cannot be listed or deleted:
    /// the deletion then stops at this step (exit 3) rather than certify while versions remain.
    private func purge(
        _ store: any Store, storeName: String, prefix: String,
        into result: inout DeletionTenantResult
    ) throws -> (count: Int, bytes: Int)? {
        if let versions = store.versions {
            guard let state = try versionState(versions, storeName: storeName, into: &result) else { return nil }
            if state != .off {
                do {
                    let all = try versions.listVersions(prefix: prefix)
                    try versions.deleteVersions(all)
                    return (all.count, all.reduce(0) { $0 + $1.size })
                } catch {
                    result.state = .versionsLeft
                    result.problems.append(
                        "store \(storeName) has versioning \(state.rawValue) and the versions under \(prefix) could not be listed or deleted: \(error); nothing past this step was done"
                    )
                    return nil
                }
            }
        }
        let objects = try store.list(prefix: prefix)
        try store.deleteMany(objects.map(\.key))
        return (objects.count, objects.reduce(0) { $0 + $1.size })
    }

    /// The store's versioning state, or nil with the problem in `result` when it cannot be read
    /// (a deletion must not guess that a bucket keeps no versions).
    private func versionState(
        _ versions: any ObjectVersions, storeName: String,
        into result: inout DeletionTenantResult
    ) throws -> VersioningState? {
        do {
            return try versions.versioning()
        } catch {
            result.state = .versionsLeft
            result.problems.append("store \(storeName): its versioning state cannot be read: \(error); nothing past this step was done")
            return nil
        }
    }

    private enum SlotDrop { case dropped, absent, unreachable(String), failed(String) }

    private func dropSlot(_ slot: String, dsn: String, passfile: String?) -> SlotDrop {
        var conninfo = dsn
        if let passfile, FileManager.default.fileExists(atPath: passfile) { conninfo += " passfile=\(passfile)" }
        let connection: PGConnection
        do { connection = try PGConnection(dsn: conninfo) } catch { return .unreachable("\(error)") }
        do {
            let rows = try connection.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '\(slot)'")
            return rows.isEmpty ? .absent : .dropped
        } catch {
            return .failed("\(error)")
        }
    }

    private func fileSize(_ path: String) -> Int? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return Int(st.st_size)
    }

    private func removeItem(_ path: String) throws {
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw CoreError.failed("cannot remove \(path): \(error.localizedDescription)")
        }
    }

    /// Removes a file or a directory tree and returns how many files and bytes went. An absent
    /// path removes nothing.
    func removeTree(_ path: String) throws -> (Int, Int) {
        guard let top = fileSize(path) else { return (0, 0) }
        var files = 0, bytes = 0
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            let e = FileManager.default.enumerator(atPath: path)
            while let rel = e?.nextObject() as? String {
                let size = fileSize(path + "/" + rel) ?? 0
                files += 1
                bytes += size
            }
        } else {
            files = 1
            bytes = top
        }
        try removeItem(path)
        return (files, bytes)
    }
}

/// One ended contract in `tresor deletion calendar`.
public struct DeletionCalendarEntry: Codable, Sendable {
    /// Printed and encoded as the raw value.
    public enum State: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
        /// Before its deadline.
        case scheduled
        case inProgress = "in-progress"
        /// On legal hold: the date is open.
        case held
        /// The deadline passed and the deletion has not run.
        case overdue
        /// Deleted and certified.
        case deleted

        public var description: String { rawValue }
    }

    public var tenant: String
    public var contractEnd: Date?
    /// Contract end plus the policy's delay: the first moment deletion may run.
    public var deadline: Date?
    /// When the last copy is (or was) gone; `nil` while a hold stops the clock.
    public var lastCopyGone: Date?
    /// Contract end plus 90 days: the promise.
    public var promise: Date?
    public var state: State
    /// Why `lastCopyGone` is what it is, WAL included.
    public var reasoning: String
    public var problem: Bool
}

public struct DeletionCalendar: Codable, Sendable {
    public var asOf: Date
    public var entries: [DeletionCalendarEntry]
    public var outcome: Outcome { entries.contains(where: \.problem) ? .problemFound : .ok }
}

extension Installation {
    /// `tresor deletion calendar`: for each ended contract, the date by which the last copy of its
    /// data is gone. Deletion destroys every key envelope and the WAL key at the deadline, so WAL
    /// of the recovery window (which reaches back `postgres.recovery_window` from the last
    /// archived segment, at most the contract end) is unreadable from that moment and removed in
    /// the same run; no copy outlives the deadline. A problem (exit 3) is a date past contract end
    /// plus 90 days, an overdue deletion, or a hold (the date is then open).
    public func deletionCalendar() throws -> DeletionCalendar {
        let now = clock.now()
        let delay = policy.deletion.delayAfterContractEnd
        let window = policy.postgres.recoveryWindow
        let promiseDays: TimeInterval = 90 * 86400
        var entries: [DeletionCalendarEntry] = []
        let deletions = Dictionary(uniqueKeysWithValues: try catalog.deletions().map { ($0.tenant, $0) })
        for t in try catalog.tenants() {
            guard let end = t.contractEnd else { continue }
            let deadline = DeletionRule.deadline(contractEnd: end, delay: delay)
            let promise = end.addingTimeInterval(promiseDays)
            var e = DeletionCalendarEntry(
                tenant: t.name, contractEnd: end, deadline: deadline, lastCopyGone: deadline,
                promise: promise, state: .scheduled, reasoning: "", problem: false)
            e.reasoning =
                "keys and the WAL key are destroyed at the deadline (contract end + \(delay)); the recovery window's WAL "
                + "(\(window) back from the last segment, archived no later than the contract end) becomes unreadable then and is deleted in the same run"
            if deletions[t.name].map({ $0.step > .planned }) == true {
                e.state = .inProgress
                e.problem = now > promise
            } else if t.holdReason != nil {
                e.state = .held
                e.lastCopyGone = nil
                e.reasoning = "on legal hold: deletion waits for tresor tenant release \(t.name)"
                e.problem = true
            } else if now >= deadline {
                e.state = .overdue
                e.lastCopyGone = now
                e.reasoning += "; the deadline has passed and the deletion has not run: tresor deletion run"
                e.problem = true
            }
            if let gone = e.lastCopyGone, gone > promise { e.problem = true }
            entries.append(e)
        }
        for d in deletions.values.sorted(by: { $0.tenant < $1.tenant }) where d.step == .certified {
            entries.append(
                DeletionCalendarEntry(
                    tenant: d.tenant, contractEnd: nil, deadline: nil, lastCopyGone: d.finishedAt,
                    promise: nil, state: .deleted,
                    reasoning: "deleted and certified (evidence kind deletion)", problem: false))
        }
        return DeletionCalendar(asOf: now, entries: entries)
    }
}
