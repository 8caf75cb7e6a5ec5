import TresorCore
import TresorCrypto

/// Where each page of a paged file's previous version is stored, read from its tree node: what a
/// ``PagedStream`` compares new pages with, so unchanged pages are neither stored nor their old
/// chunks read again.
///
/// A chunk the previous version uses for less than ``minShare`` of its bytes, or that the index
/// no longer lists, is not reused: its pages count as changed and are stored again. That bounds
/// what a restore reads for nothing (a chunk is always opened whole) as backups pile up.
public struct PagedPrevious: Sendable {
    /// The least share of a chunk's bytes a file must still use for its pages to be reused.
    public static let minShare = 0.25

    let digests: [UInt8]
    let chunks: [ObjectID]
    /// For each full page of the previous version: the index in `chunks` (-1: store it again)
    /// and the byte offset in that chunk's plaintext. For a delta page, its base page.
    let pageChunk: [Int32]
    let pageOffset: [UInt32]
    /// For each full page stored as a delta: its delta's index in `chunks` (-1: none; -2: a
    /// delta in a chunk not worth reusing, so the page counts as changed), offset and length.
    /// Empty when the previous version has no deltas.
    let deltaChunk: [Int32]
    let deltaOffset: [UInt32]
    let deltaLength: [UInt32]

    /// The previous version of a file from its tree node; nil when the node is not paged (a base
    /// backup taken before paged files: every page is then stored, deduplicating by chunk as
    /// before) or its digests do not describe its pages.
    public init?(node: TreeNode, index: RepositoryIndex) {
        let page = PagedStream.pageSize
        guard node.kind == .file, node.flags.contains(.paged) else { return nil }
        let fullPages = Int(node.size / UInt64(page))
        var pageChunk = [Int32](repeating: -1, count: fullPages)
        var pageOffset = [UInt32](repeating: 0, count: fullPages)
        var used = [Int](repeating: 0, count: node.chunks.count)
        var at: UInt64 = 0
        for s in node.slices {
            // Slices of paged files are whole pages, except a short last one (never reused).
            var o = s.offset, left = s.length
            while left >= UInt32(page) {
                let p = Int(at / UInt64(page))
                if at % UInt64(page) == 0, p < fullPages {
                    pageChunk[p] = Int32(s.chunk)
                    pageOffset[p] = o
                    used[Int(s.chunk)] += page
                }
                at += UInt64(page)
                o += UInt32(page)
                left -= UInt32(page)
            }
            at += UInt64(left)
        }
        var deltaChunk: [Int32] = [], deltaOffset: [UInt32] = [], deltaLength: [UInt32] = []
        if node.flags.contains(.pageDeltas) {
            deltaChunk = [Int32](repeating: -1, count: fullPages)
            deltaOffset = [UInt32](repeating: 0, count: fullPages)
            deltaLength = [UInt32](repeating: 0, count: fullPages)
            for d in node.pageDeltas where Int(d.page) < fullPages {
                deltaChunk[Int(d.page)] = Int32(d.chunk)
                deltaOffset[Int(d.page)] = d.offset
                deltaLength[Int(d.page)] = d.length
                used[Int(d.chunk)] += Int(d.length)
            }
        }
        let keep = node.chunks.enumerated().map { i, c -> Bool in
            guard let loc = index.location(of: c) else { return false }
            return Double(used[i]) >= Self.minShare * Double(loc.rawLength)
        }
        for p in 0..<fullPages where pageChunk[p] >= 0 && !keep[Int(pageChunk[p])] { pageChunk[p] = -1 }
        for p in 0..<deltaChunk.count where deltaChunk[p] >= 0 && !keep[Int(deltaChunk[p])] { deltaChunk[p] = -2 }
        digests = node.pageDigests
        chunks = node.chunks
        self.pageChunk = pageChunk
        self.pageOffset = pageOffset
        self.deltaChunk = deltaChunk
        self.deltaOffset = deltaOffset
        self.deltaLength = deltaLength
    }
}

/// Opens chunks of earlier backups for ``PagedStream``, which needs a changed page's base page to
/// store the difference: the last few chunks opened stay open (their plaintext buffers are
/// reused), since pages come in file order and their base pages mostly lie in one chunk after
/// another. A chunk that cannot be opened is remembered as such and its pages are stored whole.
/// Not thread-safe.
public final class BaseChunkCache {
    private let repo: TenantRepository
    private let index: RepositoryIndex
    private let opener: BlobOpener
    private var ids: [ObjectID?]
    private var buffers: [[UInt8]]
    private var next = 0
    private var unreadable: Set<ObjectID> = []
    /// Chunks that could not be read or opened (their pages were stored whole instead).
    public private(set) var failures: [String] = []

    public init(repository: TenantRepository, index: RepositoryIndex, slots: Int = 4) throws {
        repo = repository
        self.index = index
        opener = try BlobOpener(keys: repository.keys)
        ids = [ObjectID?](repeating: nil, count: slots)
        buffers = [[UInt8]](repeating: [], count: slots)
    }

    /// Calls `body` with `length` bytes from `offset` of chunk `id`'s plaintext; false (and
    /// `body` not called) when the chunk cannot be read or is shorter.
    func withBytes(of id: ObjectID, offset: Int, length: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        var slot = ids.firstIndex(of: id)
        if slot == nil {
            guard !unreadable.contains(id) else { return false }
            let s = next
            next = (next + 1) % ids.count
            ids[s] = nil
            do {
                guard let loc = index.location(of: id) else { throw RepositoryError(.corrupt, "chunk \(id.short) is not in the index") }
                let sealed = try repo.store.get(repo.layout.pack(loc.pack), range: loc.range)
                try sealed.withUnsafeBytes { try opener.open($0, id: id, location: loc, into: &buffers[s]) }
            } catch {
                // Nothing is lost: the pages whose base this was are stored whole, and `check`
                // reports the chunk in every backup that needs it. The failure is kept for the report.
                unreadable.insert(id)
                failures.append("base chunk \(id.short): \(error)")
                return false
            }
            ids[s] = id
            slot = s
        }
        let s = slot!
        guard offset + length <= buffers[s].count else { return false }
        buffers[s].withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + length])) }
        return true
    }
}

/// How a chunk of pages (blob type ``BlobType/pages``) is identified, so that storing a page
/// hashes it once: each 8 KiB page (the last one may be short) gets its chunk-id MAC,
/// HMAC-SHA-256(chunk-id key, page), whose first 8 bytes are also its page digest, and the chunk's
/// id is HMAC-SHA-256(page-group key, MAC of page 1 ‖ … ‖ MAC of page n).
///
/// Two different chunks get one id only if two different pages share a 256-bit chunk-id MAC or
/// two different MAC lists share a page-group MAC: as unlikely as a collision of plain chunk
/// ids. The page-group key is a separate key, so no such id equals the plain id of any content.
/// Not thread-safe (two OpenSSL contexts): one per thread.
public final class PageGroupID {
    private let pageMAC: HMACSHA256
    private let groupMAC: HMACSHA256

    public init(keys: TenantKeys) {
        pageMAC = HMACSHA256(key: keys.chunkID)
        groupMAC = HMACSHA256(key: keys.pageGroupID)
    }

    /// The chunk-id MAC of one page (its first 8 bytes are the page's digest).
    public func mac(page: UnsafeRawBufferPointer) -> ObjectID {
        pageMAC.mac(page)
    }

    /// Starts the id of a new chunk of pages.
    public func begin() {
        groupMAC.begin()
    }

    /// Adds the next page of the chunk, by its ``mac(page:)``.
    public func add(_ pageMAC: ObjectID) {
        var words = (pageMAC.w0, pageMAC.w1, pageMAC.w2, pageMAC.w3)  // ObjectID's byte order
        withUnsafeBytes(of: &words) { groupMAC.update($0) }
    }

    /// The id of the chunk whose pages were added since ``begin()``.
    public func finish() -> ObjectID {
        groupMAC.finish()
    }

    /// The id of a whole chunk of pages from its plaintext (what `check --read-data` compares).
    public func id(of plaintext: UnsafeRawBufferPointer) -> ObjectID {
        begin()
        var at = 0
        while at < plaintext.count {
            let n = min(PagedStream.pageSize, plaintext.count - at)
            add(mac(page: UnsafeRawBufferPointer(rebasing: plaintext[at..<at + n])))
            at += n
        }
        return finish()
    }
}

/// The producer side for paged files (PostgreSQL relation files): cuts a stream into 8 KiB
/// pages, compares each page's digest with the same page of the file's previous version, and
/// refers to the chunk that already holds an unchanged page instead of storing it again. Changed
/// pages are gathered, in file order, into new chunks of up to `groupBytes`, so they compress
/// together, as blobs of type ``BlobType/pages`` identified by ``PageGroupID``, so each stored
/// page is hashed once. The file becomes a list of chunks and ``TreeNode/Slice``s of them, plus the page
/// digests the next backup compares with.
///
/// Every backup's tree names every chunk its files need (old ones too), so each backup is whole
/// by itself: `check` finds a lost chunk in every backup that uses it, prune keeps a chunk while
/// any backup refers to it, and no backup is a delta on another. Without a previous version every
/// page is "changed": the chunks then hold the fixed `groupBytes` pieces of the whole file. (Base
/// backups before page-group ids named such chunks by one MAC of their plaintext; the first
/// backup by a newer version of a file last stored that way stores it again once.)
///
/// Buffers (one page, one group) are allocated once and reused for every file. Not thread-safe.
public final class PagedStream {
    /// PostgreSQL's page size, the unit of comparison.
    public static let pageSize = 8192
    private static let unset = ObjectID([UInt8](repeating: 0, count: ObjectID.byteCount))

    private let writer: BlobWriter
    private let ids: PageGroupID
    private let deltaIDs: PageGroupID
    private let bases: BaseChunkCache?
    private let codec: PageDeltaCodec
    /// The most bytes a page's delta (its runs with their headers) may take; a page that differs
    /// from its base by more is stored whole and becomes the base of its next deltas.
    private let maxDeltaBytes: Int
    private let delta: UnsafeMutableRawBufferPointer
    private var deltaFill = 0
    /// The index in `chunks` reserved for the delta chunk being gathered.
    private var deltaSlot: UInt32?
    private var deltas: [TreeNode.PageDelta] = []
    private let groupBytes: Int
    private let page: UnsafeMutableRawBufferPointer
    private var pageFill = 0
    private let group: UnsafeMutableRawBufferPointer
    private var groupFill = 0
    /// The index in `chunks` reserved for the group being gathered.
    private var groupSlot: UInt32?
    private var previous: PagedPrevious?
    private var compressionOf: ((UnsafeRawBufferPointer) -> ZstdSetting?)?
    private var pageNumber = 0
    private var chunks: [ObjectID] = []
    private var slot: [ObjectID: UInt32] = [:]
    private var slices: [TreeNode.Slice] = []
    private var digests: [UInt8] = []
    private var bytes: UInt64 = 0
    /// Page MACs computed by the caller (``append(_:macs:)``), taken in page order instead of
    /// hashing the pages again here.
    private var given: UnsafePointer<ObjectID>?
    private var givenLeft = 0

    /// Pages of the current file found unchanged and not stored.
    public private(set) var reusedPages = 0
    /// Pages of the current file stored whole (changed, new, or in a chunk not worth reusing).
    public private(set) var storedPages = 0
    /// Pages of the current file stored as a new delta against their base page, and the bytes of
    /// those deltas (before compression).
    public private(set) var deltaPages = 0
    public private(set) var deltaBytes = 0

    /// `groupBytes` (a multiple of ``pageSize``, at most the repository's largest chunk) bounds
    /// a chunk of changed pages, and a chunk of deltas. `bases` opens the previous versions'
    /// chunks so a changed page can be stored as its difference from its base page; nil stores
    /// every changed page whole (and no deltas are written), as does `maxDeltaBytes` 0.
    public init(repository: TenantRepository, writer: BlobWriter, groupBytes: Int, bases: BaseChunkCache? = nil, maxDeltaBytes: Int = 0) throws {
        precondition(maxDeltaBytes >= 0 && maxDeltaBytes <= Self.pageSize / 2, "a delta is smaller than half a page")
        precondition(groupBytes % Self.pageSize == 0 && groupBytes > 0, "page groups are whole pages")
        self.writer = writer
        self.groupBytes = groupBytes
        self.bases = maxDeltaBytes > 0 ? bases : nil
        self.maxDeltaBytes = maxDeltaBytes
        codec = try PageDeltaCodec()
        ids = PageGroupID(keys: repository.keys)
        deltaIDs = PageGroupID(keys: repository.keys)
        page = .allocate(byteCount: Self.pageSize, alignment: 64)
        group = .allocate(byteCount: groupBytes, alignment: 64)
        delta = .allocate(byteCount: groupBytes, alignment: 64)
    }

    deinit {
        page.deallocate()
        group.deallocate()
        delta.deallocate()
    }

    /// Starts a file; `previous` is its last version (nil: store every page). `compression`
    /// chooses a zstd setting per new chunk, as in ``ChunkStream/begin(fixed:compression:)``.
    public func begin(previous: PagedPrevious?, compression: ((UnsafeRawBufferPointer) -> ZstdSetting?)? = nil) {
        self.previous = previous
        compressionOf = compression
        pageFill = 0
        groupFill = 0
        groupSlot = nil
        deltaFill = 0
        deltaSlot = nil
        deltas = []
        deltaPages = 0
        deltaBytes = 0
        pageNumber = 0
        chunks = []
        slot = [:]
        slices = []
        digests = []
        bytes = 0
        reusedPages = 0
        storedPages = 0
    }

    /// Adds bytes of the current file. Whole pages that lie in `data` are taken from it directly;
    /// only a page split across calls is gathered in the page buffer first.
    public func append(_ data: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < data.count {
            if pageFill == 0 && data.count - off >= Self.pageSize {
                try takePage(UnsafeRawBufferPointer(rebasing: data[off..<off + Self.pageSize]))
                off += Self.pageSize
                continue
            }
            let n = min(Self.pageSize - pageFill, data.count - off)
            (page.baseAddress! + pageFill).copyMemory(from: data.baseAddress! + off, byteCount: n)
            pageFill += n
            off += n
            if pageFill == Self.pageSize { try takeBufferedPage() }
        }
    }

    /// Adds bytes of the current file whose pages' chunk-id MACs (``PageGroupID/mac(page:)``)
    /// the caller already has: `macs` holds one for every page these bytes complete, in order
    /// (a page begun by earlier bytes included, the file's short last page not: that one goes to
    /// ``finish(lastMAC:)``). Lets another thread hash the pages while this one stores them.
    public func append(_ data: UnsafeRawBufferPointer, macs: UnsafeBufferPointer<ObjectID>) throws {
        precondition(macs.count == (pageFill + data.count) / Self.pageSize, "one MAC for every page the bytes complete")
        try taking(macs) { try append(data) }
    }

    /// Runs `body` with `macs` as the MACs of the pages it takes (``takePage(_:)``), in order.
    private func taking(_ macs: UnsafeBufferPointer<ObjectID>, _ body: () throws -> Void) rethrows {
        given = macs.baseAddress
        givenLeft = macs.count
        defer {
            given = nil
            givenLeft = 0
        }
        try body()
    }

    /// Ends the file: the chunks it uses, its slices of them, its page digests and its delta
    /// pages (empty when none: the file then needs no ``TreeNode/Flags/pageDeltas``). `lastMAC`:
    /// the MAC of a short last page the caller computed (nil: hashed here).
    public func finish(
        lastMAC: ObjectID? = nil
    ) throws -> (
        chunks: [ObjectID], slices: [TreeNode.Slice], pageDigests: [UInt8], deltas: [TreeNode.PageDelta]
    ) {
        if pageFill > 0 {
            if let m = lastMAC {
                try withUnsafePointer(to: m) { try taking(UnsafeBufferPointer(start: $0, count: 1)) { try takeBufferedPage() } }
            } else {
                try takeBufferedPage()
            }
        }
        try storeGroup()
        try storeDeltas()
        return (chunks, slices, digests, deltas)
    }

    /// Bytes of the current file so far.
    public var byteCount: UInt64 { bytes }

    private func takeBufferedPage() throws {
        defer { pageFill = 0 }
        try takePage(UnsafeRawBufferPointer(start: page.baseAddress, count: pageFill))
    }

    /// One page (a whole one, or the file's short last one).
    private func takePage(_ view: UnsafeRawBufferPointer) throws {
        let mac: ObjectID
        if givenLeft > 0, let g = given {
            mac = g.pointee
            given = g + 1
            givenLeft -= 1
        } else {
            mac = ids.mac(page: view)
        }
        let digest = mac.w0
        withUnsafeBytes(of: digest) { digests.append(contentsOf: $0) }
        let n = pageNumber
        pageNumber += 1
        bytes += UInt64(view.count)
        if view.count == Self.pageSize, let prev = previous, n < prev.pageChunk.count, prev.pageChunk[n] >= 0 {
            let baseID = prev.chunks[Int(prev.pageChunk[n])]
            let hadDelta = prev.deltaChunk.isEmpty ? -1 : prev.deltaChunk[n]
            if hadDelta != -2,
                prev.digests.withUnsafeBytes({ $0.loadUnaligned(fromByteOffset: n * TreeNode.pageDigestBytes, as: UInt64.self) }) == digest
            {
                // Unchanged: the same base page, and the same delta when it had one.
                addSlice(chunk: slotFor(baseID), offset: prev.pageOffset[n], length: UInt32(view.count))
                if hadDelta >= 0 {
                    deltas.append(
                        .init(
                            page: UInt32(n), chunk: slotFor(prev.chunks[Int(hadDelta)]), offset: prev.deltaOffset[n],
                            length: prev.deltaLength[n]))
                }
                reusedPages += 1
                return
            }
            if bases != nil, try storeDelta(page: n, view, base: baseID, offset: prev.pageOffset[n]) { return }
        }
        let s: UInt32
        if let g = groupSlot {
            s = g
        } else {
            s = UInt32(chunks.count)
            chunks.append(Self.unset)  // replaced by the group's id when it is stored
            groupSlot = s
            ids.begin()
        }
        ids.add(mac)
        (group.baseAddress! + groupFill).copyMemory(from: view.baseAddress!, byteCount: view.count)
        addSlice(chunk: s, offset: UInt32(groupFill), length: UInt32(view.count))
        groupFill += view.count
        storedPages += 1
        if groupFill + Self.pageSize > groupBytes { try storeGroup() }
    }

    /// The index in `chunks` of `id`, added when the file does not use it yet.
    private func slotFor(_ id: ObjectID) -> UInt32 {
        if let known = slot[id] { return known }
        let s = UInt32(chunks.count)
        chunks.append(id)
        slot[id] = s
        return s
    }

    /// Stores page `n` as its runs of differences from its base page (`offset` in chunk `base`);
    /// false when the base cannot be read or the page differs too much (then it is stored whole).
    private func storeDelta(page n: Int, _ view: UnsafeRawBufferPointer, base: ObjectID, offset: UInt32) throws -> Bool {
        if groupBytes - deltaFill < maxDeltaBytes { try storeDeltas() }
        var written: Int? = nil
        let read = bases!.withBytes(of: base, offset: Int(offset), length: Self.pageSize) { old in
            written = codec.encode(new: view, old: old, into: UnsafeMutableRawBufferPointer(rebasing: delta[deltaFill..<deltaFill + maxDeltaBytes]))
        }
        guard read, let length = written else { return false }
        if length == 0 {
            // Back to its base page's bytes: the base alone.
            addSlice(chunk: slotFor(base), offset: offset, length: UInt32(Self.pageSize))
            reusedPages += 1
            return true
        }
        let s: UInt32
        if let d = deltaSlot {
            s = d
        } else {
            s = UInt32(chunks.count)
            chunks.append(Self.unset)  // replaced by the delta chunk's id when it is stored
            deltaSlot = s
        }
        addSlice(chunk: slotFor(base), offset: offset, length: UInt32(Self.pageSize))
        deltas.append(.init(page: UInt32(n), chunk: s, offset: UInt32(deltaFill), length: UInt32(length)))
        deltaFill += length
        deltaPages += 1
        deltaBytes += length
        return true
    }

    private func storeDeltas() throws {
        guard let s = deltaSlot else { return }
        let view = UnsafeRawBufferPointer(start: delta.baseAddress, count: deltaFill)
        let id = deltaIDs.id(of: view)
        try writer.add(id: id, type: .pages, data: view, compression: compressionOf?(view))
        chunks[Int(s)] = id
        if slot[id] == nil { slot[id] = s }
        deltaSlot = nil
        deltaFill = 0
    }

    private func addSlice(chunk: UInt32, offset: UInt32, length: UInt32) {
        if let last = slices.last, last.chunk == chunk, last.offset + last.length == offset {
            slices[slices.count - 1].length += length
        } else {
            slices.append(.init(chunk: chunk, offset: offset, length: length))
        }
    }

    private func storeGroup() throws {
        guard let s = groupSlot else { return }
        let view = UnsafeRawBufferPointer(start: group.baseAddress, count: groupFill)
        let id = ids.finish()
        try writer.add(id: id, type: .pages, data: view, compression: compressionOf?(view))
        chunks[Int(s)] = id
        if slot[id] == nil { slot[id] = s }
        groupSlot = nil
        groupFill = 0
    }
}
