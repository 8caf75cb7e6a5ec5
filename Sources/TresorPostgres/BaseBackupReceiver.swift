import Foundation
import TresorCore
import TresorRepository

/// The first stage of a base backup: a thread of its own reads the server's COPY stream, parses
/// the tar archive in it and computes the chunk-id MAC of every page of every relation file,
/// handing the results over in batches; the backup's thread stores them (page comparison,
/// deltas, chunking). Reading, parsing and hashing were a third of that thread's work, done one
/// after the other with the rest; now they run beside it, on the other core.
///
/// Nothing is copied: a batch holds libpq's own message buffers, and its events point into them
/// until the batch is recycled. Memory is bounded: ``batchCount`` batches of about
/// ``batchBytes`` each (the reader waits when all are in use), and their arrays keep their
/// capacity from one use to the next.
final class BaseBackupReceiver: @unchecked Sendable {
    /// A tar entry, and whether it is a relation file (stored by page).
    struct Entry {
        var entry: TarReader.Entry
        var paged: Bool
    }

    /// What the stream said, in order.
    enum Event {
        /// A new archive began ('n').
        case archive(String)
        /// The backup manifest begins ('m'); the data that follows is the manifest's.
        case manifestBegin
        case manifestData(UnsafeRawBufferPointer)
        /// A regular file begins (directories and links only end).
        case begin(Entry)
        /// Bytes of the current file; for a relation file, the MACs (in ``Batch/macs``, from
        /// `macStart`, `macCount` of them) of the pages these bytes complete.
        case data(UnsafeRawBufferPointer, macStart: Int, macCount: Int)
        /// An entry ends; for a relation file whose last page is short, that page's MAC index in
        /// ``Batch/macs`` (else -1).
        case end(Entry, lastMAC: Int)
    }

    /// Messages and what was read from them.
    final class Batch {
        var buffers: [UnsafeMutableRawBufferPointer] = []
        var events: [Event] = []
        var macs: [ObjectID] = []
        var bytes = 0

        func clear() {
            for b in buffers { PGConnection.freeCopyData(b) }
            buffers.removeAll(keepingCapacity: true)
            events.removeAll(keepingCapacity: true)
            macs.removeAll(keepingCapacity: true)
            bytes = 0
        }
    }

    /// Batches in flight between the two threads.
    static let batchCount = 4
    /// A batch is handed over once its messages hold this many bytes (the server sends 32 KiB
    /// messages).
    static let batchBytes = 1 << 20

    private let connection: PGConnection
    private let pageIDs: PageGroupID
    private let free: BlockingQueue<Batch>
    private let full: BlockingQueue<Batch>
    private let thread = ThreadGroup()
    private let failure = Locked<Error?>(nil)
    private let stopped = Locked(false)
    private var finishedTar = false
    private var joined = false

    /// Starts reading `connection`, which must be in COPY OUT of BASE_BACKUP; it is this
    /// object's until ``finish()`` or ``stop()`` returns.
    init(connection: PGConnection, pageIDs: PageGroupID) {
        self.connection = connection
        self.pageIDs = pageIDs
        free = BlockingQueue(capacity: Self.batchCount)
        full = BlockingQueue(capacity: Self.batchCount)
        for _ in 0..<Self.batchCount { free.push(Batch()) }
        thread.start(1, name: "pg-receive") { [self] _ in
            do {
                try read()
            } catch {
                failure.withLock { $0 = error }
            }
            full.close()
        }
    }

    /// The next batch, nil when the stream ended (or the reader failed: ``finish()`` throws).
    func next() -> Batch? { full.pop() }

    /// Gives a batch back once its events are handled (frees its messages).
    func recycle(_ batch: Batch) {
        batch.clear()
        free.push(batch)
    }

    /// Waits for the reader; throws what it hit. Whether the tar archive reached its end.
    func finish() throws {
        join()
        if let error = failure.withLock({ $0 }) { throw error }
    }

    var tarFinished: Bool { finishedTar }

    /// Stops the reader (the backup failed) and waits for it; what is queued is freed. The
    /// connection is then left mid-stream and only fit to be closed.
    func stop() {
        guard !joined else { return }
        stopped.withLock { $0 = true }
        free.close()
        while let b = full.pop() { b.clear() }
        join()
    }

    private func join() {
        guard !joined else { return }
        thread.wait()
        joined = true
        while let b = full.pop() { b.clear() }
    }

    /// The reader thread's loop.
    private func read() throws {
        var tar = TarReader()
        var inManifest = false
        var current: Entry?
        // A page of a relation file split across messages is gathered here to be hashed.
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: PagedStream.pageSize, alignment: 64)
        defer { page.deallocate() }
        var pageFill = 0
        // Stands in for the batch being filled once that one is handed over and no other comes.
        let spare = Batch()
        guard var batch = free.pop() else { return }
        defer { batch.clear() }
        /// Hands the batch over and takes an empty one; false when the backup stopped.
        func hand() -> Bool {
            guard full.push(batch) else { return false }
            batch = spare
            guard let b = free.pop() else { return false }
            batch = b
            return true
        }
        /// MACs of the pages `bytes` completes, in the order ``PagedStream`` takes them.
        func hashPages(_ bytes: UnsafeRawBufferPointer) {
            let size = PagedStream.pageSize
            var off = 0
            while off < bytes.count {
                if pageFill == 0 && bytes.count - off >= size {
                    batch.macs.append(pageIDs.mac(page: UnsafeRawBufferPointer(rebasing: bytes[off..<off + size])))
                    off += size
                    continue
                }
                let n = min(size - pageFill, bytes.count - off)
                (page.baseAddress! + pageFill).copyMemory(from: bytes.baseAddress! + off, byteCount: n)
                pageFill += n
                off += n
                if pageFill == size {
                    batch.macs.append(pageIDs.mac(page: UnsafeRawBufferPointer(page)))
                    pageFill = 0
                }
            }
        }
        while let message = try connection.copyDataOwned() {
            guard !stopped.withLock({ $0 }) else {
                PGConnection.freeCopyData(message)
                return
            }
            batch.buffers.append(message)
            batch.bytes += message.count
            guard let type = message.first else { continue }
            let body = UnsafeRawBufferPointer(rebasing: message[1...])
            switch type {
            case UInt8(ascii: "n"):
                batch.events.append(.archive(String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)))
            case UInt8(ascii: "m"):
                inManifest = true
                batch.events.append(.manifestBegin)
            case UInt8(ascii: "d") where inManifest:
                batch.events.append(.manifestData(body))
            case UInt8(ascii: "d"):
                try tar.feed(body) { event in
                    switch event {
                    case .begin(let e):
                        guard case .file = e.kind else { return }
                        let entry = Entry(entry: e, paged: BaseBackup.isRelationFile(e.path))
                        current = entry
                        pageFill = 0
                        batch.events.append(.begin(entry))
                    case .data(let bytes):
                        let start = batch.macs.count
                        if current?.paged == true { hashPages(bytes) }
                        batch.events.append(.data(bytes, macStart: start, macCount: batch.macs.count - start))
                    case .end(let e):
                        var last = -1
                        if let c = current, c.paged, case .file = e.kind, pageFill > 0 {
                            last = batch.macs.count
                            batch.macs.append(pageIDs.mac(page: UnsafeRawBufferPointer(rebasing: page[0..<pageFill])))
                        }
                        if case .file = e.kind {
                            batch.events.append(.end(current ?? Entry(entry: e, paged: false), lastMAC: last))
                            current = nil
                        } else {
                            batch.events.append(.end(Entry(entry: e, paged: false), lastMAC: -1))
                        }
                    }
                }
            default:
                break  // progress ('p') and anything newer carry nothing we store
            }
            if batch.bytes >= Self.batchBytes, !hand() { return }
        }
        finishedTar = tar.finished
        if !batch.events.isEmpty || !batch.buffers.isEmpty {
            guard full.push(batch) else { return }
            batch = spare
        }
    }
}
