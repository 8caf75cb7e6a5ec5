import TresorCore

/// Where one blob lives: its pack and its byte range there, and how to decode it.
public struct BlobLocation: Sendable, Equatable {
    public var pack: ObjectID
    public var offset: UInt32
    /// Sealed length in the pack (payload + 28 bytes of nonce and tag).
    public var length: UInt32
    /// Length of the plaintext.
    public var rawLength: UInt32
    public var type: BlobType
    public var compression: BlobCompression

    public init(pack: ObjectID, offset: UInt32, length: UInt32, rawLength: UInt32, type: BlobType, compression: BlobCompression) {
        self.pack = pack
        self.offset = offset
        self.length = length
        self.rawLength = rawLength
        self.type = type
        self.compression = compression
    }

    public var range: Range<Int> { Int(offset)..<Int(offset) + Int(length) }
}

/// One blob as listed in a pack header and an index object.
public struct PackEntry: Sendable, Equatable {
    public var id: ObjectID
    public var type: BlobType
    public var compression: BlobCompression
    public var offset: UInt32
    public var length: UInt32
    public var rawLength: UInt32

    func encode(into w: inout ByteWriter) {
        w.u8(type.rawValue)
        w.u8(compression.rawValue)
        w.id(id)
        w.varint(UInt64(offset))
        w.varint(UInt64(length))
        w.varint(UInt64(rawLength))
    }

    static func decode(_ r: inout ByteReader) throws -> PackEntry {
        let t = try r.u8(), c = try r.u8()
        guard let type = BlobType(rawValue: t), let compression = BlobCompression(rawValue: c) else {
            throw RepositoryError(.corrupt, "unknown blob type \(t) or compression \(c)")
        }
        let id = try r.id()
        func u32() throws -> UInt32 {
            let v = try r.varint()
            guard v <= UInt64(UInt32.max) else { throw RepositoryError(.corrupt, "blob offset or length out of range") }
            return UInt32(v)
        }
        return PackEntry(id: id, type: type, compression: compression, offset: try u32(), length: try u32(), rawLength: try u32())
    }
}

/// The packs one index object describes, each with its size and entries.
public struct IndexFile: Sendable, Equatable {
    public struct Pack: Sendable, Equatable {
        public var id: ObjectID
        public var size: Int
        public var entries: [PackEntry]

        public init(id: ObjectID, size: Int, entries: [PackEntry]) {
            self.id = id
            self.size = size
            self.entries = entries
        }
    }

    public var packs: [Pack]

    public init(packs: [Pack]) { self.packs = packs }

    static let magic = Array("TIX1".utf8)

    /// `"TIX1"` ‖ pack count ‖ per pack: id (32) ‖ size ‖ entry count ‖ entries
    /// (type, compression, id, offset, length, raw length; numbers as varints).
    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + packs.count * 32 + packs.reduce(0) { $0 + $1.entries.count * 44 })
        w.raw(Self.magic)
        w.varint(packs.count)
        for p in packs {
            w.id(p.id)
            w.varint(p.size)
            w.varint(p.entries.count)
            for e in p.entries { e.encode(into: &w) }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], name: String) throws -> IndexFile {
        var r = ByteReader(bytes, what: name)
        guard Array(try r.raw(4)) == magic else { throw RepositoryError(.corrupt, "\(name) is not an index (bad magic)") }
        var packs: [Pack] = []
        let count = try r.int()
        for _ in 0..<count {
            let id = try r.id()
            let size = try r.int()
            let n = try r.int()
            var entries: [PackEntry] = []
            entries.reserveCapacity(min(n, 1 << 16))
            for _ in 0..<n { entries.append(try PackEntry.decode(&r)) }
            packs.append(Pack(id: id, size: size, entries: entries))
        }
        return IndexFile(packs: packs)
    }
}

/// Every blob of a tenant known from its index objects, by id. Thread-safe.
///
/// Held compactly because a tenant of millions of files has millions of blobs: each pack id is
/// stored once and blobs refer to it by number, blob records live in fixed-size segments (no
/// doubling copy while the index grows), and lookup goes through an open-addressed table of
/// 4-byte record numbers. About 60 bytes per blob instead of about 160 for a dictionary of
/// ``BlobLocation``s (issue 15).
public final class RepositoryIndex: @unchecked Sendable {
    private let state = Locked(State())

    struct State {
        var blobs = BlobTable()
        /// Pack number → pack id; the numbers blob records refer to.
        var packs: [ObjectID] = []
        var packNumbers: [ObjectID: UInt32] = [:]
        var packSizes: [ObjectID: Int] = [:]
        var indexObjects: [ObjectID: [ObjectID]] = [:]

        mutating func packNumber(_ id: ObjectID) -> UInt32 {
            if let n = packNumbers[id] { return n }
            precondition(packs.count < Int(UInt32.max), "more than 2^32 packs in one index")
            let n = UInt32(packs.count)
            packs.append(id)
            packNumbers[id] = n
            return n
        }

        func location(_ r: BlobTable.Record) -> BlobLocation {
            BlobLocation(
                pack: packs[Int(r.pack)], offset: r.offset, length: r.length, rawLength: r.rawLength,
                type: r.type, compression: r.compression)
        }
    }

    public init() {}

    /// Adds what one index object lists. A blob listed again replaces its earlier location.
    public func add(_ file: IndexFile, indexID: ObjectID?) {
        state.withLock { s in
            s.blobs.reserve(additional: file.packs.reduce(0) { $0 + $1.entries.count })
            for p in file.packs {
                s.packSizes[p.id] = p.size
                let pack = s.packNumber(p.id)
                for e in p.entries {
                    s.blobs.set(
                        BlobTable.Record(
                            id: e.id, pack: pack, offset: e.offset, length: e.length,
                            rawLength: e.rawLength, type: e.type, compression: e.compression))
                }
            }
            if let indexID { s.indexObjects[indexID] = file.packs.map(\.id) }
        }
    }

    public func location(of id: ObjectID) -> BlobLocation? {
        state.withLock { s in s.blobs.find(id).map { s.location(s.blobs[$0]) } }
    }

    public func contains(_ id: ObjectID) -> Bool { state.withLock { $0.blobs.find(id) != nil } }

    public var blobCount: Int { state.withLock { $0.blobs.count } }

    /// Every pack the index knows, with its expected size.
    public var packSizes: [ObjectID: Int] { state.withLock { $0.packSizes } }

    /// Index object id → the packs it lists.
    public var indexObjects: [ObjectID: [ObjectID]] { state.withLock { $0.indexObjects } }

    /// How many blobs the index places in each pack: one number per pack, so a check of
    /// millions of blobs does not hold a second copy of the index grouped by pack.
    public func blobCountsByPack() -> [ObjectID: Int] {
        state.withLock { s in
            var counts = [Int](repeating: 0, count: s.packs.count)
            s.blobs.forEach { counts[Int($0.pack)] += 1 }
            var out: [ObjectID: Int] = [:]
            out.reserveCapacity(s.packs.count)
            for (n, c) in counts.enumerated() where c > 0 { out[s.packs[n]] = c }
            return out
        }
    }

    /// The blobs the index places in the given packs (one pass over the index; for damage).
    public func blobs(inPacks packs: Set<ObjectID>) -> [(ObjectID, BlobLocation)] {
        guard !packs.isEmpty else { return [] }
        return state.withLock { s in
            var wanted = [Bool](repeating: false, count: s.packs.count)
            for p in packs { if let n = s.packNumbers[p] { wanted[Int(n)] = true } }
            var out: [(ObjectID, BlobLocation)] = []
            s.blobs.forEach { r in if wanted[Int(r.pack)] { out.append((r.id, s.location(r))) } }
            return out
        }
    }

    /// Marks `ids` in `marks` (one bit per blob of this index, by record number). An id the
    /// index does not list is left out: no pack of this index holds it.
    public func mark(_ ids: some Sequence<ObjectID>, in marks: inout BlobMarks) {
        state.withLock { s in
            for id in ids {
                guard let n = s.blobs.find(id) else { continue }
                marks.insert(n)
            }
        }
    }

    /// Whether `id` is a blob of this index that `marks` holds.
    public func isMarked(_ id: ObjectID, in marks: BlobMarks) -> Bool {
        state.withLock { s in s.blobs.find(id).map(marks.contains) ?? false }
    }

    /// For each pack the index places blobs in: the bytes of its blobs that `marks` holds. One
    /// pass over the index and one number per pack, so prune never holds a second copy of the
    /// index grouped by pack nor a set of blob ids (issue 15). A pack with no marked blob maps to 0.
    public func usedBytesByPack(_ marks: BlobMarks) -> [ObjectID: Int] {
        state.withLock { s in
            var used = [Int](repeating: -1, count: s.packs.count)
            var n = 0
            s.blobs.forEach { r in
                let p = Int(r.pack)
                if used[p] < 0 { used[p] = 0 }
                if marks.contains(n) { used[p] += Int(r.length) }
                n += 1
            }
            var out: [ObjectID: Int] = [:]
            out.reserveCapacity(s.packs.count)
            for (p, u) in used.enumerated() where u >= 0 { out[s.packs[p]] = u }
            return out
        }
    }
}

/// A set of the blobs of one ``RepositoryIndex``, one bit per blob: 2 M blobs take 256 KiB
/// where a `Set<ObjectID>` takes about 100 MiB.
public struct BlobMarks: Sendable {
    private var words: [UInt64] = []

    public init() {}

    mutating func insert(_ n: Int) {
        let w = n >> 6
        if w >= words.count { words.append(contentsOf: repeatElement(0, count: w + 1 - words.count)) }
        words[w] |= 1 << UInt64(n & 63)
    }

    func contains(_ n: Int) -> Bool {
        let w = n >> 6
        return w < words.count && words[w] & (1 << UInt64(n & 63)) != 0
    }
}
