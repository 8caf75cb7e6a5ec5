import TresorCore
import TresorStore

/// Reads the files of a snapshot tree in tree order as byte streams, one chunk at a time, for a
/// consumer that writes them elsewhere (an archive writer for exports) without a scratch copy.
///
/// Memory stays bounded by one chunk: each ``FileContent/next(_:)`` reads one blob's sealed bytes
/// from its pack (one ranged get), opens it into a buffer reused for the whole tree, and hands
/// out a view of that buffer. Holes of sparse files come as zeros, in pieces of at most 64 KiB
/// from one shared zero buffer, so a consumer sees each file's full logical content. A blob that
/// is missing, unreadable or fails authentication is thrown from ``FileContent/next(_:)``; nothing is skipped.
public final class TreeReader {
    private let repo: TenantRepository
    private let index: RepositoryIndex
    private let opener: BlobOpener
    fileprivate var plain: [UInt8] = []
    fileprivate let zeros = [UInt8](repeating: 0, count: 64 << 10)
    /// A delta page of a paged file: its base page with the delta's runs written over it.
    fileprivate let page = UnsafeMutableRawBufferPointer.allocate(byteCount: PagedStream.pageSize, alignment: 64)
    /// The plaintext of the chunk of the last delta read (kept apart from ``plain``, which holds
    /// the base pages).
    fileprivate var deltaPlain: [UInt8] = []
    fileprivate var deltaOpened: ObjectID?
    fileprivate let codec: PageDeltaCodec

    public init(repository: TenantRepository, index: RepositoryIndex) throws {
        repo = repository
        self.index = index
        opener = try BlobOpener(keys: repository.keys)
        codec = try PageDeltaCodec()
    }

    deinit { page.deallocate() }

    /// Calls `body` for each node in order; for a regular file, `content` streams its bytes (it
    /// is valid only during the call), for any other node it is nil.
    public func forEach(_ nodes: [TreeNode], _ body: (TreeNode, FileContent?) throws -> Void) throws {
        for n in nodes {
            if n.kind == .file {
                let content = FileContent(reader: self, node: n)
                try body(n, content)
            } else {
                try body(n, nil)
            }
        }
    }

    /// The chunk whose plaintext ``plain`` holds (slices of paged files reuse it).
    fileprivate var opened: ObjectID?

    fileprivate func openChunk(_ id: ObjectID) throws {
        if opened == id { return }
        opened = nil
        try open(id, into: &plain)
        opened = id
    }

    fileprivate func openDeltaChunk(_ id: ObjectID) throws {
        if deltaOpened == id { return }
        deltaOpened = nil
        try open(id, into: &deltaPlain)
        deltaOpened = id
    }

    private func open(_ id: ObjectID, into out: inout [UInt8]) throws {
        guard let loc = index.location(of: id) else {
            throw RepositoryError(.corrupt, "chunk \(id.short) is not in the index of tenant '\(repo.tenant)'")
        }
        let sealed = try repo.store.get(repo.layout.pack(loc.pack), range: loc.range)
        try sealed.withUnsafeBytes { try opener.open($0, id: id, location: loc, into: &out) }
    }
}

/// The content of one file of a ``TreeReader`` walk.
public final class FileContent {
    private unowned let reader: TreeReader
    private let node: TreeNode
    private let extents: [TreeNode.Extent]
    /// The next chunk, or for a paged file the next slice.
    private var chunk = 0
    /// For a paged file: bytes of the current slice already handed out (a slice is handed out in
    /// pieces around its delta pages), and the next page delta.
    private var withinSlice: UInt32 = 0
    private var delta = 0
    /// Logical position in the file.
    private var position: UInt64 = 0
    private var extent = 0
    private var withinExtent: UInt64 = 0

    fileprivate init(reader: TreeReader, node: TreeNode) {
        self.reader = reader
        self.node = node
        extents = node.flags.contains(.sparse) ? node.extents : [.init(offset: 0, length: node.size)]
    }

    /// One piece of a file: a run of zeros (a hole), or the chunk just opened into the reader's
    /// buffer (valid until the next chunk is opened).
    private enum Piece {
        case zeros(Int)
        /// These bytes of the reader's chunk buffer.
        case chunk(Range<Int>)
        /// The reader's page buffer (a delta page).
        case page
    }

    /// The rest of the piece ``read(into:)`` is handing out: zeros still due, or the reader's
    /// chunk buffer from `pendingOffset` on.
    private var pendingZeros = 0
    private var pendingOffset = 0
    private var pendingEnd = 0
    private var pendingChunk = false
    private var pendingPage = false

    /// Hands the next piece of the file to `body` (the view is valid only during the call);
    /// false at the end of the file.
    public func next(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        switch try advance() {
        case nil:
            return false
        case .zeros(let n):
            try reader.zeros.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        case .chunk(let range):
            try reader.plain.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
        case .page:
            try body(UnsafeRawBufferPointer(reader.page))
        }
        return true
    }

    /// Fills `buffer` with the file's next bytes and returns how many: fewer than `buffer.count`
    /// only at the end of the file, 0 after it. For consumers that pull into a buffer of their own
    /// (an archive writer); nothing is allocated per call. Use either this or ``next(_:)`` on one
    /// file, not both.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            if pendingZeros > 0 {
                let n = min(pendingZeros, buffer.count - filled)
                (buffer.baseAddress! + filled).initializeMemory(as: UInt8.self, repeating: 0, count: n)
                pendingZeros -= n
                filled += n
            } else if pendingChunk, pendingOffset < pendingEnd {
                let n = min(pendingEnd - pendingOffset, buffer.count - filled)
                let from = pendingOffset
                reader.plain.withUnsafeBytes { src in
                    (buffer.baseAddress! + filled).copyMemory(from: src.baseAddress! + from, byteCount: n)
                }
                pendingOffset += n
                filled += n
            } else if pendingPage, pendingOffset < pendingEnd {
                let n = min(pendingEnd - pendingOffset, buffer.count - filled)
                (buffer.baseAddress! + filled).copyMemory(from: reader.page.baseAddress! + pendingOffset, byteCount: n)
                pendingOffset += n
                filled += n
            } else {
                pendingChunk = false
                pendingPage = false
                switch try advance() {
                case nil:
                    return filled
                case .zeros(let n):
                    pendingZeros = n
                case .chunk(let range):
                    pendingChunk = true
                    pendingOffset = range.lowerBound
                    pendingEnd = range.upperBound
                case .page:
                    pendingPage = true
                    pendingOffset = 0
                    pendingEnd = reader.page.count
                }
            }
        }
        return filled
    }

    /// Counts `n` bytes of slice `s` as handed out.
    private func advanceSlice(by n: UInt32, of s: TreeNode.Slice) {
        position += UInt64(n)
        withinSlice += n
        if withinSlice == s.length {
            chunk += 1
            withinSlice = 0
        }
    }

    /// Moves to the next piece of the file; nil at its end.
    private func advance() throws -> Piece? {
        if node.flags.contains(.paged) {
            // A paged file is its slices, in order: stretches of its chunks.
            // A paged file is its slices, in order: stretches of its chunks, with each delta
            // page handed out as its base page with the delta's runs written over it.
            guard chunk < node.slices.count else {
                if delta < node.pageDeltas.count { throw RepositoryError(.corrupt, "\(node.displayPath) has a page delta past its slices") }
                return nil
            }
            let s = node.slices[chunk]
            try reader.openChunk(node.chunks[Int(s.chunk)])
            guard Int(s.offset) + Int(s.length) <= reader.plain.count else {
                throw RepositoryError(.corrupt, "\(node.displayPath) has a slice that reaches past the end of its chunk")
            }
            var length = s.length - withinSlice
            let from = Int(s.offset + withinSlice)
            if delta < node.pageDeltas.count {
                let d = node.pageDeltas[delta]
                let page = UInt64(d.page) * UInt64(PagedStream.pageSize)
                if page < position {
                    throw RepositoryError(.corrupt, "\(node.displayPath) has a page delta that does not start a page of its slices")
                }
                if page == position {
                    guard length >= UInt32(PagedStream.pageSize) else {
                        throw RepositoryError(.corrupt, "\(node.displayPath) has a page delta whose base page is split")
                    }
                    reader.plain.withUnsafeBytes { src in
                        reader.page.baseAddress!.copyMemory(from: src.baseAddress! + from, byteCount: PagedStream.pageSize)
                    }
                    try reader.openDeltaChunk(node.chunks[Int(d.chunk)])
                    guard Int(d.offset) + Int(d.length) <= reader.deltaPlain.count,
                        reader.deltaPlain.withUnsafeBytes({
                            reader.codec.apply(UnsafeRawBufferPointer(rebasing: $0[Int(d.offset)..<Int(d.offset) + Int(d.length)]), to: reader.page)
                        })
                    else {
                        throw RepositoryError(.corrupt, "\(node.displayPath) has a damaged page delta or one past the end of its chunk")
                    }
                    delta += 1
                    advanceSlice(by: UInt32(PagedStream.pageSize), of: s)
                    return .page
                }
                if page > position && page - position < UInt64(length) { length = UInt32(page - position) }
            }
            advanceSlice(by: length, of: s)
            return .chunk(from..<from + Int(length))
        }
        while extent < extents.count && withinExtent == extents[extent].length {
            extent += 1
            withinExtent = 0
        }
        let dataStart = extent < extents.count ? extents[extent].offset : node.size
        if position < dataStart {
            let n = Int(min(UInt64(reader.zeros.count), dataStart - position))
            position += UInt64(n)
            return .zeros(n)
        }
        guard extent < extents.count else {
            if chunk < node.chunks.count {
                throw RepositoryError(.corrupt, "\(node.displayPath) has more chunks than its size holds")
            }
            return nil
        }
        guard chunk < node.chunks.count else {
            throw RepositoryError(.corrupt, "\(node.displayPath) has fewer chunk bytes than its size")
        }
        try reader.openChunk(node.chunks[chunk])
        chunk += 1
        let n = UInt64(reader.plain.count)
        guard n <= extents[extent].length - withinExtent else {
            throw RepositoryError(.corrupt, "\(node.displayPath) has a chunk that does not fit its size and extents")
        }
        withinExtent += n
        position += n
        return .chunk(0..<reader.plain.count)
    }
}
