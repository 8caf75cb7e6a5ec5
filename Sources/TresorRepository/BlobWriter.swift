import Foundation
import TresorCore
import TresorCrypto
import TresorStore

/// The write side of the pipeline: takes identified chunks from producers, drops the ones the
/// tenant already has, and compresses, seals and packs the rest on worker threads while uploader
/// threads store finished packs and, every few packs, an index object describing them.
///
/// Memory is bounded: producers copy each new chunk into one of a fixed number of chunk slots
/// (allocated once; a producer waits when all are in use), each worker owns one reusable pack
/// buffer, and at most `uploadQueue` finished packs wait for upload. Nothing is allocated per
/// chunk on this path.
///
/// Crash safety: packs are stored before the index object that lists them, and index objects
/// before the snapshot that needs them, so a killed run leaves at worst unreferenced packs, which
/// the next run's dedup (for indexed packs) or prune reclaims.
public final class BlobWriter: @unchecked Sendable {
    /// Tuning of one writer, from the backup policy.
    public struct Settings: Sendable {
        public var compressionLevel: Int
        public var packTarget: Int
        public var maxBlob: Int
        public var indexEveryPacks: Int
        public var workers: Int
        public var uploaders: Int

        public init(policy: Policy.Backup, uploaders: Int) {
            compressionLevel = policy.compressionLevel
            packTarget = policy.packTarget
            maxBlob = policy.chunkMax
            indexEveryPacks = policy.indexEveryPacks
            workers = policy.workers > 0 ? policy.workers : availableCores
            self.uploaders = uploaders
        }
    }

    /// What a writer stored.
    public struct Stats: Sendable {
        public var newBlobs = 0
        public var newRawBytes: UInt64 = 0
        public var packs = 0
        public var packBytes: UInt64 = 0
        public var indexObjects = 0
    }

    private struct Job {
        var slot: Int
        var length: Int
        var id: ObjectID
        var type: BlobType
        var compression: ZstdSetting?
    }

    private let repo: TenantRepository
    private let index: RepositoryIndex
    private let settings: Settings
    private let slots: [UnsafeMutableRawBufferPointer]
    private let freeSlots: BlockingQueue<Int>
    private let jobs: BlockingQueue<Job>
    private let uploads: BlockingQueue<FinishedPack>
    private let packBuffers: PackBufferPool
    private let pending = Locked(Set<ObjectID>())
    private let state = Locked(State())
    private let workerThreads = ThreadGroup()
    private let uploaderThreads = ThreadGroup()

    private struct State {
        var error: Error?
        var unindexed: [IndexFile.Pack] = []
        var stats = Stats()
    }

    public init(repository: TenantRepository, index: RepositoryIndex, settings: Settings) throws {
        self.repo = repository
        self.index = index
        // The repository's chunker decides how large a chunk can be, not today's policy: a policy
        // whose chunk_max_bytes was lowered after the repository was created must not size the
        // chunk slots below the chunks the repository's chunker cuts.
        var settings = settings
        settings.maxBlob = repository.config.chunker.maxSize
        self.settings = settings
        let slotCount = settings.workers + 1
        slots = (0..<slotCount).map { _ in
            UnsafeMutableRawBufferPointer.allocate(byteCount: settings.maxBlob, alignment: 64)
        }
        freeSlots = BlockingQueue(capacity: slotCount)
        for i in 0..<slotCount { freeSlots.push(i) }
        jobs = BlockingQueue(capacity: slotCount)
        uploads = BlockingQueue(capacity: 1)
        // Packs in flight: one filling per worker and one per uploader. A worker that finishes a
        // pack while every buffer is busy waits for an upload to end, which never depends on it.
        packBuffers = PackBufferPool(
            bufferSize: PackBuilder.bufferSize(target: settings.packTarget, maxBlob: settings.maxBlob),
            limit: settings.workers + settings.uploaders)
        // Create every worker's data pack builder up front so setup errors surface here.
        let builders = try (0..<settings.workers).map { _ in try self.makeBuilder() }
        let box = UncheckedBox(builders)
        workerThreads.start(settings.workers, name: "pack") { [self] i in self.workerLoop(dataBuilder: box.value[i]) }
        uploaderThreads.start(settings.uploaders, name: "upload") { [self] _ in self.uploaderLoop() }
    }

    deinit {
        for s in slots { s.deallocate() }
    }

    /// Adds a chunk whose id the producer computed. Returns false when the tenant already has it
    /// (nothing is stored), true when it was queued. Blocks while all chunk slots are in use.
    /// Throws the first error any worker or uploader hit. `compression` overrides the policy's
    /// zstd level for this blob (the stored bytes differ, the id does not).
    @discardableResult
    public func add(id: ObjectID, type: BlobType, data: UnsafeRawBufferPointer, compression: ZstdSetting? = nil) throws -> Bool {
        if let e = state.withLock({ $0.error }) { throw e }
        precondition(data.count <= settings.maxBlob, "blob larger than the repository's maximum chunk size")
        let isNew = pending.withLock { set -> Bool in
            if index.contains(id) || set.contains(id) { return false }
            set.insert(id)
            return true
        }
        guard isNew else { return false }
        guard let slot = freeSlots.pop() else { throw RepositoryError(.failed, "pipeline closed") }
        if data.count > 0 { slots[slot].baseAddress!.copyMemory(from: data.baseAddress!, byteCount: data.count) }
        jobs.push(Job(slot: slot, length: data.count, id: id, type: type, compression: compression))
        return true
    }

    /// Whether the tenant has the blob or this writer is storing it.
    public func has(_ id: ObjectID) -> Bool {
        index.contains(id) || pending.withLock { $0.contains(id) }
    }

    /// Stores everything queued, writes the last index object and returns what was stored.
    /// After `finish` the writer accepts nothing more.
    public func finish() throws -> Stats {
        jobs.close()
        workerThreads.wait()
        uploads.close()
        uploaderThreads.wait()
        let (error, rest) = state.withLock { s -> (Error?, [IndexFile.Pack]) in
            let r = s.unindexed
            s.unindexed = []
            return (s.error, r)
        }
        if !rest.isEmpty && error == nil {
            try repo.writeIndex(IndexFile(packs: rest), level: settings.compressionLevel)
            state.withLock { $0.stats.indexObjects += 1 }
        }
        if let error { throw error }
        return state.withLock { $0.stats }
    }

    private func fail(_ error: Error) {
        state.withLock { s in
            if s.error == nil { s.error = error }
        }
    }

    private func makeBuilder() throws -> PackBuilder {
        try PackBuilder(
            pool: packBuffers, target: settings.packTarget, maxBlob: settings.maxBlob,
            keys: repo.keys, level: settings.compressionLevel)
    }

    /// Each pack holds one type of blob: tree blobs go to packs of their own, so damage to a data
    /// pack never takes a snapshot's file list with it, and listing files never reads content.
    /// A worker that gets a blob of another type than its open pack finishes that pack first
    /// (tree blobs come at the end of a backup), so a worker holds at most one pack buffer.
    private func workerLoop(dataBuilder builder: PackBuilder) {
        while let job = jobs.pop() {
            let failed = state.withLock { $0.error != nil }
            if !failed {
                do {
                    if !builder.isEmpty && (builder.entries[0].type != job.type || !builder.hasRoom(for: job.length)) {
                        uploads.push(builder.finish())
                    }
                    try builder.add(
                        id: job.id, type: job.type,
                        data: UnsafeRawBufferPointer(rebasing: slots[job.slot][0..<job.length]), compression: job.compression)
                    state.withLock { s in
                        s.stats.newBlobs += 1
                        s.stats.newRawBytes += UInt64(job.length)
                    }
                } catch {
                    fail(error)
                }
            }
            freeSlots.push(job.slot)
            if builder.isFull {
                uploads.push(builder.finish())
            }
        }
        if !builder.isEmpty { uploads.push(builder.finish()) }
    }

    private func uploaderLoop() {
        while let pack = uploads.pop() {
            defer { packBuffers.give(pack.buffer) }
            if state.withLock({ $0.error != nil }) { continue }
            do {
                let id = SHA256.hash(pack.bytes)
                try repo.store.put(repo.layout.pack(id), bytes: pack.bytes, ifAbsent: true, sha256: id)
                let entry = IndexFile.Pack(id: id, size: pack.length, entries: pack.entries)
                index.add(IndexFile(packs: [entry]), indexID: nil)
                pending.withLock { set in
                    for e in pack.entries { set.remove(e.id) }
                }
                let batch = state.withLock { s -> [IndexFile.Pack]? in
                    s.stats.packs += 1
                    s.stats.packBytes += UInt64(pack.length)
                    s.unindexed.append(entry)
                    guard s.unindexed.count >= settings.indexEveryPacks else { return nil }
                    defer { s.unindexed = [] }
                    s.stats.indexObjects += 1
                    return s.unindexed
                }
                if let batch {
                    try repo.writeIndex(IndexFile(packs: batch), level: settings.compressionLevel)
                }
            } catch {
                fail(error)
            }
        }
    }
}

/// Carries a non-Sendable value into a thread that becomes its only user.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
