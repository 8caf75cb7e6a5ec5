import TresorCore
import TresorCrypto

#if canImport(Glibc)
import Glibc
#endif

/// Reads snapshot trees for browsing (`docs ls`, `find`, `diff`, `dump`), keeping the opened
/// tree blobs by id: trees are chunked and deduplicated across snapshots, so a walk over many
/// snapshots reads and decrypts each distinct tree blob once. The cache is bounded by
/// `capacity` bytes; past it the oldest blobs are dropped (they are read again if needed, never
/// lost), so memory does not grow with the number of snapshots.
public final class TreeBlobCache {
    private let repo: TenantRepository
    private let index: RepositoryIndex
    private let opener: BlobOpener
    private let capacity: Int
    private var blobs: [ObjectID: [UInt8]] = [:]
    private var order: [ObjectID] = []
    private var held = 0
    /// Tree blobs read from the store (a cache miss each).
    public private(set) var blobsRead = 0

    public init(repository: TenantRepository, index: RepositoryIndex, capacity: Int = 256 << 20) throws {
        repo = repository
        self.index = index
        opener = try BlobOpener(keys: repository.keys)
        self.capacity = capacity
    }

    /// The decoded tree of `manifest`.
    public func nodes(
        of manifest: SnapshotManifest,
        including include: ((TreeNode.Kind, ArraySlice<UInt8>) -> Bool)? = nil
    ) throws -> [TreeNode] {
        var bytes: [UInt8] = []
        for hex in manifest.tree {
            guard let id = ObjectID(hex: hex) else { throw RepositoryError(.corrupt, "snapshot at \(manifest.time) lists a malformed tree id") }
            bytes += try blob(id)
        }
        return try TreeCodec.decode(bytes, name: "tree of snapshot at \(manifest.time)", including: include)
    }

    private func blob(_ id: ObjectID) throws -> [UInt8] {
        if let b = blobs[id] { return b }
        let b = try repo.readBlob(id, index: index, opener: opener)
        blobsRead += 1
        blobs[id] = b
        order.append(id)
        held += b.count
        while held > capacity, order.count > 1 {
            let old = order.removeFirst()
            held -= blobs.removeValue(forKey: old)?.count ?? 0
        }
        return b
    }
}

/// Paths inside a snapshot as users type and see them.
public enum BrowsePath {
    /// Reads a path given on the command line: `/`-separated, starting with a root's label;
    /// `\xNN` stands for the byte NN (so names that are not UTF-8 can be named, and a literal
    /// backslash is `\x5c`). A trailing `/` is ignored. Nil when it is empty, absolute, has an
    /// empty, `.` or `..` segment, a NUL byte, or a `\` not followed by `xNN`.
    public static func parse(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        let u = Array(text.utf8)
        var i = 0
        while i < u.count {
            if u[i] == 0x5C {
                guard i + 3 < u.count, u[i + 1] == 0x78, let hi = hexValue(u[i + 2]), let lo = hexValue(u[i + 3]) else { return nil }
                out.append(hi << 4 | lo)
                i += 4
            } else {
                out.append(u[i])
                i += 1
            }
        }
        if out.count > 1, out.last == 0x2F { out.removeLast() }
        return TreeRestorer.isContained(out) ? out : nil
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }

    /// `bytes` for printing on one line: itself when it is UTF-8 without control characters or backslashes,
    /// else with every invalid byte, control byte and backslash as `\xNN` (which ``parse(_:)``
    /// reads back). `escaped` tells which.
    public static func shown(_ bytes: [UInt8]) -> (text: String, escaped: Bool) {
        if let s = String(validating: bytes, as: UTF8.self), !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0x5C }) {
            return (s, false)
        }
        var plain: [UInt8] = []
        var out = ""
        func flush() {
            out += TreeNode.display(plain)
            plain.removeAll(keepingCapacity: true)
        }
        for b in bytes {
            if b < 0x20 || b == 0x7F || b == 0x5C {
                flush()
                out += "\\x" + (b < 0x10 ? "0" : "") + String(b, radix: 16)
            } else {
                plain.append(b)
            }
        }
        flush()
        return (out, true)
    }

    /// The nodes directly inside `dir` (or, with `recursive`, everything below it); with `dir`
    /// nil, the top-level entries (the roots).
    public static func children(of dir: [UInt8]?, in nodes: [TreeNode], recursive: Bool) -> [TreeNode] {
        guard let dir else { return recursive ? nodes : nodes.filter { !$0.pathBytes.contains(0x2F) } }
        let n = dir.count
        return nodes.filter { node in
            let p = node.pathBytes
            guard p.count > n + 1, p[n] == 0x2F, p.starts(with: dir) else { return false }
            return recursive || !p[(n + 1)...].contains(0x2F)
        }
    }
}

/// A shell glob (`fnmatch(3)`) over names or paths of a tree.
public final class TreeGlob {
    private let pattern: [CChar]
    private let flags: Int32
    /// The pattern has a `/`: it matches a path (any tail of it starting at a segment, or the
    /// whole path when the pattern starts with `/`); else it matches the last segment (the name).
    public let matchesPaths: Bool
    private let anchored: Bool
    private var buffer: [CChar] = []

    public init(_ pattern: String, ignoreCase: Bool) {
        var p = pattern
        anchored = p.hasPrefix("/")
        if anchored { p.removeFirst() }
        matchesPaths = pattern.contains("/")
        self.pattern = Array(p.utf8CString)
        flags = (matchesPaths ? FNM_PATHNAME : 0) | (ignoreCase ? (1 << 4) : 0)  // 1 << 4 is FNM_CASEFOLD
    }

    public func matches(_ path: [UInt8]) -> Bool { matches(path[...]) }

    public func matches(_ path: ArraySlice<UInt8>) -> Bool {
        if !matchesPaths {
            let start = path.lastIndex(of: 0x2F).map { $0 + 1 } ?? path.startIndex
            return test(path[start...])
        }
        if anchored { return test(path) }
        if test(path) { return true }
        for i in path.indices where path[i] == 0x2F {
            if test(path[(i + 1)...]) { return true }
        }
        return false
    }

    private func test(_ bytes: ArraySlice<UInt8>) -> Bool {
        buffer.removeAll(keepingCapacity: true)
        for b in bytes { buffer.append(CChar(bitPattern: b)) }
        buffer.append(0)
        return pattern.withUnsafeBufferPointer { p in
            buffer.withUnsafeBufferPointer { fnmatch(p.baseAddress, $0.baseAddress, flags) == 0 }
        }
    }
}

/// How two trees differ, path by path.
public enum TreeDiff {
    public enum Change: String, Sendable, Codable {
        /// The bytes (or link target, device, or kind) differ.
        case content
        /// Only mode, owner, modification time or extended attributes differ.
        case metadata
    }

    public struct Entry: Sendable {
        public var old: TreeNode?
        public var new: TreeNode?
        /// Nil for an added or removed path.
        public var change: Change?
    }

    /// Added, removed and changed paths of `new` against `old`, in `new`'s order then removed
    /// paths in `old`'s. A directory counts as changed only for its own metadata (mode, owner,
    /// attributes), not its modification time, which moves whenever an entry in it does.
    public static func diff(old: [TreeNode], new: [TreeNode]) -> [Entry] {
        var before: [[UInt8]: Int] = [:]
        before.reserveCapacity(old.count)
        for (i, n) in old.enumerated() { before[n.pathBytes] = i }
        var seen = [Bool](repeating: false, count: old.count)
        var out: [Entry] = []
        for n in new {
            guard let i = before[n.pathBytes] else {
                out.append(Entry(old: nil, new: n, change: nil))
                continue
            }
            seen[i] = true
            if let c = change(old[i], n) { out.append(Entry(old: old[i], new: n, change: c)) }
        }
        for (i, n) in old.enumerated() where !seen[i] { out.append(Entry(old: n, new: nil, change: nil)) }
        return out
    }

    /// What differs between two nodes at one path, if anything.
    public static func change(_ a: TreeNode, _ b: TreeNode) -> Change? {
        if a.kind != b.kind || contentKey(a) != contentKey(b) { return .content }
        let sameTime = a.kind == .directory || (a.mtimeSeconds == b.mtimeSeconds && a.mtimeNanoseconds == b.mtimeNanoseconds)
        if a.mode != b.mode || a.uid != b.uid || a.gid != b.gid || a.xattrs != b.xattrs || !sameTime { return .metadata }
        return nil
    }

    /// What identifies a node's content: size, chunks, extents and slices of a file, the target of a
    /// link, the device number of a device. Equal keys mean equal content.
    public static func contentKey(_ n: TreeNode) -> ObjectID {
        var w = ByteWriter(capacity: 64 + n.chunks.count * 32)
        w.u8(n.kind.rawValue)
        w.varint(n.size)
        w.varint(n.rdev)
        w.u8(n.flags.contains(.sparse) ? 1 : 0)
        w.data(n.linkTargetBytes)
        w.varint(n.extents.count)
        for e in n.extents {
            w.varint(e.offset)
            w.varint(e.length)
        }
        for c in n.chunks { w.id(c) }
        // A paged file's content is its slices of those chunks (its page digests follow from it).
        w.varint(n.slices.count)
        for s in n.slices {
            w.varint(UInt64(s.chunk))
            w.varint(UInt64(s.offset))
            w.varint(UInt64(s.length))
        }
        // And the deltas written over its pages (none in nodes written before them).
        if !n.pageDeltas.isEmpty {
            w.varint(n.pageDeltas.count)
            for d in n.pageDeltas {
                w.varint(UInt64(d.page))
                w.varint(UInt64(d.chunk))
                w.varint(UInt64(d.offset))
                w.varint(UInt64(d.length))
            }
        }
        return SHA256.hash(w.bytes)
    }
}
