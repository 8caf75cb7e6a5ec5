import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorRepository
import TresorStore

/// What `tresor replicate` did.
public struct ReplicateResult: Codable, Sendable {
    public var tenant: String
    public var from: String
    public var to: String
    /// Objects of the tenant in the source store.
    public var objects: Int
    /// Of those, already in the target with the same size.
    public var alreadyPresent: Int
    public var copied: Int
    public var bytesCopied: UInt64
    /// Source objects whose content does not match the SHA-256 their key names; not copied.
    public var problems: [String]
    public var seconds: Double
    public var outcome: Outcome
}

extension Installation {
    /// `tresor replicate T --to STORE`: copies every object under `tenants/T/` that the target
    /// lacks (or holds with another size), and verifies each copy by reading it back and comparing
    /// its SHA-256 with the source's.
    ///
    /// Incremental and resumable: what is already there is skipped, and every put is atomic, so a
    /// run that is interrupted simply leaves less done for the next one. Packs go first, then index
    /// objects, keys and config, and snapshots last, so the target never lists a snapshot whose
    /// data has not arrived. Packs and index objects are named by the SHA-256 of their content:
    /// a source object that does not match its name is reported (exit 3) and not copied. The target
    /// is opened through the region guard like any write, under the tenant's lock.
    public func replicate(tenant name: String, to storeName: String?, progress: (@Sendable (Int, Int) -> Void)? = nil) throws -> ReplicateResult {
        let tenant = try self.tenant(name)
        guard let targetName = storeName ?? tenant.offsiteStore else {
            throw CoreError.usage("tenant '\(name)' has no offsite store", hint: "tresor replicate \(name) --to STORE")
        }
        guard targetName != tenant.store else {
            throw CoreError.usage("store '\(targetName)' is the primary store of tenant '\(name)'", hint: "replicate to another store")
        }
        // Region guard first: a refused target sees no request at all.
        let target = try openStore(for: tenant, storeName: targetName, create: true)
        let source = try openStore(for: tenant, create: false)
        let lock = try TenantLock(home: home, name: name)
        defer { withExtendedLifetime(lock) {} }
        let wallStart = Date()
        let run = try catalog.startRun(kind: "replicate", tenant: name, at: clock.now())
        do {
            let layout = RepositoryLayout(tenant: name)
            // Best effort (a failed abort leaves uploads the next run or `store clean` removes);
            // only uploads older than the policy's age, never another host's in flight.
            _ = try? target.abortIncompleteUploads(prefix: layout.prefix, olderThan: policy.store.incompleteUploadAge.seconds)
            let have = Dictionary(try target.list(prefix: layout.prefix).map { ($0.key, $0.size) }, uniquingKeysWith: { a, _ in a })
            let all = try source.list(prefix: layout.prefix)
            let missing = all.filter { have[$0.key] != $0.size }
            func phase(_ key: String) -> Int {
                if key.hasPrefix(layout.packsPrefix) { return 0 }
                if key.hasPrefix(layout.indexPrefix) { return 1 }
                if key.hasPrefix(layout.snapshotsPrefix) { return 3 }
                return 2
            }
            let state = Locked((copied: 0, bytes: UInt64(0), problems: [String](), error: Error?.none))
            for p in 0...3 {
                let batch = missing.filter { phase($0.key) == p }
                if batch.isEmpty { continue }
                let queue = BlockingQueue<ObjectInfo>(capacity: batch.count)
                for o in batch { queue.push(o) }
                queue.close()
                let threads = min(max(1, target.capabilities.writeConcurrency), batch.count)
                runOnThreads(threads, name: "replicate") { _ in
                    while let o = queue.pop() {
                        if state.withLock({ $0.error != nil }) { return }
                        do {
                            if let problem = try Self.copyVerified(o.key, from: source, to: target, layout: layout) {
                                state.withLock { $0.problems.append(problem) }
                            } else {
                                let done = state.withLock { s -> Int in
                                    s.copied += 1
                                    s.bytes += UInt64(o.size)
                                    return s.copied
                                }
                                progress?(done, missing.count)
                            }
                        } catch {
                            state.withLock { if $0.error == nil { $0.error = error } }
                        }
                    }
                }
                // Never move on to snapshots while earlier objects failed to arrive.
                if let e = state.current.error { throw e }
            }
            let s = state.current
            let result = ReplicateResult(
                tenant: name, from: tenant.store, to: targetName, objects: all.count, alreadyPresent: all.count - missing.count,
                copied: s.copied, bytesCopied: s.bytes, problems: s.problems.sorted(),
                seconds: Date().timeIntervalSince(wallStart), outcome: s.problems.isEmpty ? .ok : .problemFound)
            try catalog.finishRun(id: run, at: clock.now(), status: result.outcome.rawValue, detail: json(result))
            return result
        } catch {
            try? catalog.finishRun(id: run, at: clock.now(), status: "failed", detail: json(["error": "\(error)"]))
            throw error
        }
    }

    /// Copies one object and reads it back. Returns a problem description when the source object
    /// does not match the id in its key (then nothing is written); throws when the copy fails or
    /// reads back different.
    static func copyVerified(_ key: String, from source: any Store, to target: any Store, layout: RepositoryLayout) throws -> String? {
        let bytes = try source.get(key)
        let digest = SHA256.hash(bytes)
        if key.hasPrefix(layout.packsPrefix) || key.hasPrefix(layout.indexPrefix),
           let named = RepositoryLayout.id(fromKey: key), named != digest {
            return "\(key): content does not match its name in the source store"
        }
        try target.put(key, bytes)
        let back = try target.get(key)
        guard SHA256.hash(back) == digest else {
            throw CoreError.failed("the copy of \(key) in \(target.location) reads back different from the source")
        }
        return nil
    }

    /// Aborts uploads an interrupted run left under the tenant's prefix in its primary store,
    /// once they are older than the policy's `store.incomplete_upload_age`. The tenant's lock is
    /// local to this home, so a younger upload may be another host's in flight: it is left alone.
    /// Best effort: what a failed abort leaves, the next run or `tresor store clean` removes.
    func removeOrphanUploads(tenant: TenantRecord, store: any Store) {
        _ = try? store.abortIncompleteUploads(prefix: RepositoryLayout(tenant: tenant.name).prefix,
                                              olderThan: policy.store.incompleteUploadAge.seconds)
    }
}
