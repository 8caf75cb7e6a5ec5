import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorRepository
import TresorStore

/// What `tresor replicate` did.
public struct ReplicateResult: Codable, Sendable, JobResult {
    public var tenant: String
    public var from: String
    public var to: String
    /// Objects of the tenant in the source store.
    public var objects: Int
    /// Of those, already in the target with the same size.
    public var alreadyPresent: Int
    public var copied: Int
    public var bytesCopied: UInt64
    /// Source objects that fail authentication (not copied), and target objects that differ
    /// from the source under an immutable key (left alone).
    public var problems: [String]
    public var seconds: Double
    public var outcome: Outcome
}

extension Installation {
    /// `tresor replicate T --to STORE`: copies every object under `tenants/T/` that the target
    /// lacks, and verifies each copy by reading it back and comparing its SHA-256 with the source's.
    ///
    /// Never overwrites: every copy is a put-if-absent. An object the target already holds under
    /// an immutable key with another size or other content (see
    /// ``differingOnTarget(_:source:target:layout:)`` for what is compared) is reported as a
    /// problem (exit 3) and left alone; only a WAL `.streaming` object,
    /// which `pg stream` itself replaces, is replaced. Every source object is authenticated
    /// before it is copied (``ObjectAuthenticator``: packs, index objects, snapshots, WAL objects,
    /// key envelopes, config); one that fails is reported and not copied.
    ///
    /// Incremental and resumable: what is already there is skipped, and every put is atomic, so a
    /// run that is interrupted simply leaves less done for the next one. Packs go first, then index
    /// objects, keys and config, and snapshots last, so the target never lists a snapshot whose
    /// data has not arrived. The target is opened through the region guard like any write, under
    /// the tenant's lock.
    public func replicate(tenant id: TenantID, to storeName: String?, progress: (@Sendable (Int, Int) -> Void)? = nil) throws -> ReplicateResult {
        let name = id.rawValue
        let tenant = try self.tenant(id)
        guard let targetName = storeName ?? tenant.offsiteStore else {
            throw CoreError.usage("tenant '\(name)' has no offsite store", hint: "tresor replicate \(name) --to STORE")
        }
        guard targetName != tenant.store else {
            throw CoreError.usage("store '\(targetName)' is the primary store of tenant '\(name)'", hint: "replicate to another store")
        }
        // Region guard first: a refused target sees no request at all.
        let target = try openStore(for: tenant, storeName: targetName, create: true)
        let source = try openStore(for: tenant, create: false)
        let lock = try lockTenantForWriting(id)
        defer { withExtendedLifetime(lock) {} }
        let wallStart = Date()
        return try run(
            Job(.replicate, tenant: id) { [self] in
                let layout = RepositoryLayout(tenant: id)
                // Best effort (a failed abort leaves uploads the next run or `store clean` removes);
                // only uploads older than the policy's age, never another host's in flight.
                _ = try? target.abortIncompleteUploads(prefix: layout.prefix, olderThan: policy.store.incompleteUploadAge.seconds)
                let masters = [try masterKey()] + (try previousMasterKeys())
                let sourceRepo = try TenantRepository.open(
                    store: source, tenant: id, master: masters[0],
                    previousMasters: Array(masters.dropFirst()), policy: policy.backup,
                    clock: clock, create: false)
                let authenticator = ObjectAuthenticator(repository: sourceRepo, masters: masters)
                let have = Dictionary(try target.list(prefix: layout.prefix).map { ($0.key, $0.size) }, uniquingKeysWith: { a, _ in a })
                let all = try source.list(prefix: layout.prefix)
                var conflicts: [String] = []
                let missing = all.filter { o in
                    guard let size = have[o.key] else { return true }
                    if size == o.size { return false }
                    if Self.isReplaceable(o.key) { return true }
                    conflicts.append("\(o.key): the target holds \(size) bytes, the source \(o.size); an immutable object is never replaced")
                    return false
                }
                // Same size is not yet the same object: compare what can be compared cheaply.
                let present = all.filter { have[$0.key] == $0.size && !Self.isReplaceable($0.key) && !$0.key.hasPrefix(layout.packsPrefix) }
                conflicts += try Self.differingOnTarget(present, source: source, target: target, layout: layout)
                func phase(_ key: String) -> Int {
                    if key.hasPrefix(layout.packsPrefix) { return 0 }
                    if key.hasPrefix(layout.indexPrefix) { return 1 }
                    if key.hasPrefix(layout.snapshotsPrefix) { return 3 }
                    return 2
                }
                let state = Locked((copied: 0, bytes: UInt64(0), problems: conflicts, error: Error?.none))
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
                                if let problem = try Self.copyVerified(o.key, from: source, to: target, authenticator: authenticator) {
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
                    tenant: name, from: tenant.store, to: targetName, objects: all.count,
                    alreadyPresent: all.count - missing.count - conflicts.count,
                    copied: s.copied, bytesCopied: s.bytes, problems: s.problems.sorted(),
                    seconds: Date().timeIntervalSince(wallStart), outcome: s.problems.isEmpty ? .ok : .problemFound)
                return result
            })
    }

    /// Objects the target holds with the source's size but other content: index objects,
    /// snapshots, envelopes and config compared whole (they are small), WAL objects by their
    /// header (it holds the keyed hash of the file). Packs are not compared here: they are named
    /// by their SHA-256, so a pack that differs on the target is damage there, which `check` on
    /// the target finds.
    static func differingOnTarget(_ objects: [ObjectInfo], source: any Store, target: any Store, layout: RepositoryLayout) throws -> [String] {
        let queue = BlockingQueue<ObjectInfo>(capacity: max(1, objects.count))
        for o in objects { queue.push(o) }
        queue.close()
        let found = Locked((differing: [String](), error: Error?.none))
        runOnThreads(min(4, max(1, objects.count)), name: "replicate-compare") { _ in
            while let o = queue.pop() {
                if found.withLock({ $0.error != nil }) { return }
                do {
                    let range = o.key.hasPrefix(layout.walPrefix) ? 0..<min(o.size, WALObject.headerSize) : nil
                    if SHA256.hash(try source.get(o.key, range: range)) != SHA256.hash(try target.get(o.key, range: range)) {
                        found.withLock {
                            $0.differing.append("\(o.key): the target holds other content of the same size; an immutable object is never replaced")
                        }
                    }
                } catch {
                    found.withLock { if $0.error == nil { $0.error = error } }
                }
            }
        }
        if let e = found.current.error { throw e }
        return found.current.differing.sorted()
    }

    /// Only a WAL `.streaming` object (the growing tail of a segment, replaced by `pg stream`
    /// itself) may be replaced on the target; every other key names content that never changes.
    static func isReplaceable(_ key: String) -> Bool { key.hasSuffix(".streaming") }

    /// Authenticates one object, copies it if the target lacks it, and reads it back. Returns a
    /// problem when the source object fails authentication (nothing is written) or when the target
    /// already holds other content under an immutable key (left alone); throws when the copy
    /// fails or reads back different.
    static func copyVerified(_ key: String, from source: any Store, to target: any Store, authenticator: ObjectAuthenticator) throws -> String? {
        let bytes = try source.get(key)
        do {
            try authenticator.authenticate(key: key, bytes: bytes)
        } catch  where RepositoryError.isDamage(error) {
            return "\(key) in the source store: \(RepositoryError.describe(error)); not copied"
        }
        let digest = SHA256.hash(bytes)
        let created = try target.put(key, bytes, ifAbsent: !isReplaceable(key))
        let back = try target.get(key)
        guard SHA256.hash(back) == digest else {
            if !created {
                return "\(key): the target already holds other content; an immutable object is never replaced"
            }
            throw CoreError.failed("the copy of \(key) in \(target.location) reads back different from the source")
        }
        return nil
    }

    /// Aborts uploads an interrupted run left under the tenant's prefix in its primary store,
    /// once they are older than the policy's `store.incomplete_upload_age`. The tenant's lock is
    /// local to this home, so a younger upload may be another host's in flight: it is left alone.
    /// Best effort: what a failed abort leaves, the next run or `tresor store clean` removes.
    func removeOrphanUploads(tenant: TenantID, store: any Store) {
        _ = try? store.abortIncompleteUploads(
            prefix: RepositoryLayout(tenant: tenant).prefix,
            olderThan: policy.store.incompleteUploadAge.seconds)
    }
}
