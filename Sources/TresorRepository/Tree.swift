import Foundation
import TresorCore

/// One entry of a snapshot's file tree.
///
/// Paths and link targets are bytes, as the file system holds them: a name that is not valid
/// UTF-8 is kept exactly. ``path`` and ``linkTarget`` are views of them for printing only.
public struct TreeNode: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case file = 1
        case directory = 2
        case symlink = 3
        case fifo = 4
        case socket = 5
        case characterDevice = 6
        case blockDevice = 7
    }

    /// Flags recorded with a node.
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The file kept changing while it was read; its content may mix old and new bytes.
        public static let changedDuringBackup = Flags(rawValue: 1)
        /// The file has holes: only ``TreeNode/extents`` hold data (`TTR2` only).
        public static let sparse = Flags(rawValue: 2)
        /// The file is 8 KiB pages stored by page (`TTR3` only): its content is ``TreeNode/slices``
        /// of its chunks, and ``TreeNode/pageDigests`` let the next backup find unchanged pages.
        public static let paged = Flags(rawValue: 4)
        /// A ``paged`` file some of whose pages are stored as ``TreeNode/PageDelta``s against the
        /// page its slices name (`TTR4` only).
        public static let pageDeltas = Flags(rawValue: 8)
    }

    /// A page of a ``Flags/pageDeltas`` file stored as its difference from the page its slices
    /// name (the base page, always stored whole): `length` bytes from `offset` of the plaintext of
    /// `chunks[chunk]` are the delta (``PageDeltaCodec``: runs of replaced bytes, or a zstd frame
    /// with the base page as prefix). The file's content is its slices' bytes with every delta
    /// page made from its base page.
    public struct PageDelta: Sendable, Equatable {
        /// The page's number in the file (a whole page, never the short last one).
        public var page: UInt32
        public var chunk: UInt32
        public var offset: UInt32
        public var length: UInt32
        public init(page: UInt32, chunk: UInt32, offset: UInt32, length: UInt32) {
            self.page = page
            self.chunk = chunk
            self.offset = offset
            self.length = length
        }
    }

    /// A stretch of one of the file's chunks: `length` bytes from `offset` of the plaintext of
    /// `chunks[chunk]`. A paged file's content is its slices' bytes, in order.
    public struct Slice: Sendable, Equatable {
        public var chunk: UInt32
        public var offset: UInt32
        public var length: UInt32
        public init(chunk: UInt32, offset: UInt32, length: UInt32) {
            self.chunk = chunk
            self.offset = offset
            self.length = length
        }
    }

    /// One extended attribute (POSIX ACLs are the `system.posix_acl_access` and
    /// `system.posix_acl_default` attributes, in the kernel's binary form).
    public struct ExtendedAttribute: Sendable, Equatable {
        public var name: [UInt8]
        public var value: [UInt8]
        public init(name: [UInt8], value: [UInt8]) {
            self.name = name
            self.value = value
        }
    }

    /// A stretch of a sparse file that holds data. The file's chunks, concatenated, are the
    /// extents' bytes in order; everything outside the extents is a hole.
    public struct Extent: Sendable, Equatable {
        public var offset: UInt64
        public var length: UInt64
        public init(offset: UInt64, length: UInt64) {
            self.offset = offset
            self.length = length
        }
    }

    /// Path relative to the snapshot's top, `/`-separated, first segment is the root's label.
    public var pathBytes: [UInt8]
    public var kind: Kind
    /// Permission bits (including setuid, setgid, sticky).
    public var mode: UInt32
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: UInt32
    /// Inode change time when the node was recorded (0 in trees written before `TTR2`).
    public var ctimeSeconds: Int64 = 0
    public var ctimeNanoseconds: UInt32 = 0
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var device: UInt64
    public var inode: UInt64
    /// The device number of a character or block device node.
    public var rdev: UInt64 = 0
    public var flags: Flags
    /// The link target of a symlink, as stored on disk.
    public var linkTargetBytes: [UInt8]
    /// Content chunk ids of a file, in order.
    public var chunks: [ObjectID]
    /// Extended attributes, in the order the file system listed them.
    public var xattrs: [ExtendedAttribute] = []
    /// Data extents of a file flagged ``Flags/sparse`` (possibly none: all hole); without the flag
    /// the file is stored whole and its chunks cover `size` bytes.
    public var extents: [Extent] = []
    /// For a ``Flags/paged`` file: its content as stretches of its chunks, in file order.
    public var slices: [Slice] = []
    /// For a ``Flags/paged`` file: ``pageDigestBytes`` bytes per page (the last page may be
    /// short), the first bytes of the page's keyed chunk id. Not needed to restore; the next base
    /// backup compares pages with them instead of reading this one's data.
    public var pageDigests: [UInt8] = []
    /// For a ``Flags/pageDeltas`` file: its delta pages, by increasing page number.
    public var pageDeltas: [PageDelta] = []

    /// Bytes of a page digest: a false "unchanged" needs two versions of one page whose keyed
    /// HMAC-SHA-256 agree in 64 bits (2^-64 per changed page), and costs 8 bytes per page per tree.
    public static let pageDigestBytes = 8

    /// The path for messages: itself when it is UTF-8, else with each invalid byte as `\xNN`.
    public var displayPath: String { Self.display(pathBytes) }

    /// `bytes` as text for messages: itself when valid UTF-8, else invalid bytes as `\xNN`.
    public static func display<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        var out = ""
        var rest = Array(bytes)[...]
        while !rest.isEmpty {
            // Longest valid prefix, then one escaped byte.
            var n = rest.count
            while n > 0, String(validating: rest.prefix(n), as: UTF8.self) == nil { n -= 1 }
            // Not lossy: the loop above stopped at a prefix that validates as UTF-8.
            out += String(validating: rest.prefix(n), as: UTF8.self) ?? ""
            rest = rest.dropFirst(n)
            if let b = rest.first {
                out += "\\x" + String(b, radix: 16, uppercase: false).leftPadded(2)
                rest = rest.dropFirst()
            }
        }
        return out
    }

    public init(
        pathBytes: [UInt8], kind: Kind, mode: UInt32, mtimeSeconds: Int64, mtimeNanoseconds: UInt32,
        uid: UInt32, gid: UInt32, size: UInt64, device: UInt64, inode: UInt64,
        flags: Flags = [], linkTargetBytes: [UInt8] = [], chunks: [ObjectID] = []
    ) {
        self.pathBytes = pathBytes
        self.kind = kind
        self.mode = mode
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
        self.uid = uid
        self.gid = gid
        self.size = size
        self.device = device
        self.inode = inode
        self.flags = flags
        self.linkTargetBytes = linkTargetBytes
        self.chunks = chunks
    }

    public init(
        path: String, kind: Kind, mode: UInt32, mtimeSeconds: Int64, mtimeNanoseconds: UInt32,
        uid: UInt32, gid: UInt32, size: UInt64, device: UInt64, inode: UInt64,
        flags: Flags = [], linkTarget: String = "", chunks: [ObjectID] = []
    ) {
        self.init(
            pathBytes: Array(path.utf8), kind: kind, mode: mode, mtimeSeconds: mtimeSeconds,
            mtimeNanoseconds: mtimeNanoseconds, uid: uid, gid: gid, size: size, device: device, inode: inode,
            flags: flags, linkTargetBytes: Array(linkTarget.utf8), chunks: chunks)
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// The binary encoding of a snapshot's file tree.
///
/// `"TTR2"` then nodes in depth-first, bytewise name-sorted order (a directory before its
/// contents), each: kind (1) ‖ path ‖ mode ‖ mtime seconds (zig-zag) ‖ mtime nanoseconds ‖ ctime
/// seconds (zig-zag) ‖ ctime nanoseconds ‖ uid ‖ gid ‖ size ‖ device ‖ inode ‖ rdev ‖ flags (1) ‖
/// link target ‖ xattr count ‖ (name ‖ value)… ‖ extent count ‖ (offset ‖ length)… ‖ chunk count ‖
/// chunk ids (32 each). Byte strings are a varint length and the bytes; numbers are varints.
/// `"TTR1"` trees (no ctime, rdev, xattrs or extents; paths written from UTF-8 text) are still
/// read. The stream is split into `tree` blobs with the tenant's chunker, so unchanged stretches of
/// a tree are stored once across snapshots.
public enum TreeCodec {
    static let magicV1 = Array("TTR1".utf8)
    static let magicV2 = Array("TTR2".utf8)
    static let magicV3 = Array("TTR3".utf8)
    static let magic = Array("TTR4".utf8)

    /// `TTR4` when a node has page deltas, `TTR3` when a node is paged, else `TTR2`: each the
    /// oldest version that holds the nodes, so older Tresor reads what it can and refuses the rest
    /// (an unknown magic), never misreads it.
    public static func encode(_ nodes: [TreeNode]) -> [UInt8] {
        let paged = nodes.contains { $0.flags.contains(.paged) }
        let deltas = nodes.contains { $0.flags.contains(.pageDeltas) }
        var w = ByteWriter(
            capacity: 4 + nodes.count * 100 + nodes.reduce(0) { $0 + $1.pageDigests.count + $1.slices.count * 8 + $1.pageDeltas.count * 12 })
        w.raw(deltas ? magic : header(paged: paged))
        for n in nodes { encodeNode(n, into: &w) }
        return w.bytes
    }

    /// The bytes that open a tree without page deltas: `TTR3` when it has a paged node, else `TTR2`.
    public static func header(paged: Bool) -> [UInt8] { paged ? magicV3 : magicV2 }

    /// Appends one node's encoding (as ``encode(_:)`` writes it after the magic).
    public static func encodeNode(_ n: TreeNode, into w: inout ByteWriter) {
        w.u8(n.kind.rawValue)
        w.data(n.pathBytes)
        w.varint(UInt64(n.mode))
        w.svarint(n.mtimeSeconds)
        w.varint(UInt64(n.mtimeNanoseconds))
        w.svarint(n.ctimeSeconds)
        w.varint(UInt64(n.ctimeNanoseconds))
        w.varint(UInt64(n.uid))
        w.varint(UInt64(n.gid))
        w.varint(n.size)
        w.varint(n.device)
        w.varint(n.inode)
        w.varint(n.rdev)
        w.u8(n.flags.rawValue)
        w.data(n.linkTargetBytes)
        w.varint(n.xattrs.count)
        for x in n.xattrs {
            w.data(x.name)
            w.data(x.value)
        }
        w.varint(n.extents.count)
        for e in n.extents {
            w.varint(e.offset)
            w.varint(e.length)
        }
        w.varint(n.chunks.count)
        for c in n.chunks { w.id(c) }
        if n.flags.contains(.paged) {
            w.data(n.pageDigests)
            w.varint(n.slices.count)
            for sl in n.slices {
                w.varint(UInt64(sl.chunk))
                w.varint(UInt64(sl.offset))
                w.varint(UInt64(sl.length))
            }
        }
        if n.flags.contains(.pageDeltas) {
            w.varint(n.pageDeltas.count)
            var last: UInt32 = 0
            for d in n.pageDeltas {
                w.varint(UInt64(d.page - last))  // increasing: the gap is small
                last = d.page
                w.varint(UInt64(d.chunk))
                w.varint(UInt64(d.offset))
                w.varint(UInt64(d.length))
            }
        }
    }

    public static func decode(_ bytes: [UInt8], name: String) throws -> [TreeNode] {
        try decode(bytes, name: name, including: nil)
    }

    /// The nodes of `bytes` for which `include(kind, path)` holds; the others are stepped over
    /// (still bounds-checked) without building them, so a search over many trees allocates only
    /// for its matches.
    public static func decode(
        _ bytes: [UInt8], name: String,
        including include: ((TreeNode.Kind, ArraySlice<UInt8>) -> Bool)?
    ) throws -> [TreeNode] {
        var r = ByteReader(bytes, what: name)
        let version = try readHeader(&r, name: name)
        var nodes: [TreeNode] = []
        while !r.isAtEnd {
            if let node = try decodeNode(&r, version: version, name: name, including: include) { nodes.append(node) }
        }
        return nodes
    }
}

extension TreeCodec {
    /// Reads the magic; the format's version (1 to 4).
    static func readHeader(_ r: inout ByteReader, name: String) throws -> Int {
        let head = Array(try r.raw(4))
        if head == magic { return 4 }
        if head == magicV3 { return 3 }
        if head == magicV2 { return 2 }
        if head == magicV1 { return 1 }
        throw RepositoryError(.corrupt, "\(name) is not a tree (bad magic)")
    }

    /// Reads one node at `r`; nil when `include` leaves it out (its bytes are stepped over).
    static func decodeNode(
        _ r: inout ByteReader, version: Int, name: String,
        including include: ((TreeNode.Kind, ArraySlice<UInt8>) -> Bool)?
    ) throws -> TreeNode? {
        let v2 = version >= 2
        let k = try r.u8()
        guard let kind = TreeNode.Kind(rawValue: k), v2 || k <= 3 else { throw RepositoryError(.corrupt, "\(name) has an unknown node kind \(k)") }
        let pathSlice = try r.data()
        if let include, !include(kind, pathSlice) {
            try skipNode(&r, version: version, name: name)
            return nil
        }
        let path = Array(pathSlice)
        func u32() throws -> UInt32 {
            let v = try r.varint()
            guard v <= UInt64(UInt32.max) else { throw RepositoryError(.corrupt, "\(name) has an out-of-range field") }
            return UInt32(v)
        }
        let mode = try u32()
        let secs = try r.svarint()
        let nsec = try u32()
        let csecs = v2 ? try r.svarint() : 0
        let cnsec = v2 ? try u32() : 0
        let uid = try u32(), gid = try u32()
        let size = try r.varint(), dev = try r.varint(), ino = try r.varint()
        let rdev = v2 ? try r.varint() : 0
        let flags = TreeNode.Flags(rawValue: try r.u8())
        let link = Array(try r.data())
        var node = TreeNode(
            pathBytes: path, kind: kind, mode: mode, mtimeSeconds: secs, mtimeNanoseconds: nsec,
            uid: uid, gid: gid, size: size, device: dev, inode: ino, flags: flags,
            linkTargetBytes: link)
        node.ctimeSeconds = csecs
        node.ctimeNanoseconds = cnsec
        node.rdev = rdev
        if v2 {
            let xcount = try r.int()
            guard xcount <= r.remaining / 2 else { throw RepositoryError(.corrupt, "\(name) has a truncated attribute list") }
            for _ in 0..<xcount {
                let xn = Array(try r.data())
                node.xattrs.append(.init(name: xn, value: Array(try r.data())))
            }
            let ecount = try r.int()
            guard ecount <= r.remaining / 2 else { throw RepositoryError(.corrupt, "\(name) has a truncated extent list") }
            var end: UInt64 = 0
            for _ in 0..<ecount {
                let e = TreeNode.Extent(offset: try r.varint(), length: try r.varint())
                // Extents are in order, do not overlap and stay inside the file.
                guard e.offset >= end, e.length <= size, e.offset <= size - e.length else {
                    throw RepositoryError(.corrupt, "\(name) has an extent outside its file")
                }
                end = e.offset + e.length
                node.extents.append(e)
            }
        }
        let count = try r.int()
        guard count <= r.remaining / 32 else { throw RepositoryError(.corrupt, "\(name) has a truncated chunk list") }
        node.chunks.reserveCapacity(count)
        for _ in 0..<count { node.chunks.append(try r.id()) }
        if flags.contains(.paged) {
            guard version >= 3, kind == .file, !flags.contains(.sparse) else { throw RepositoryError(.corrupt, "\(name) has a paged node where none can be") }
            node.pageDigests = Array(try r.data())
            let pages = (size + 8191) / 8192
            guard UInt64(node.pageDigests.count) == pages * UInt64(TreeNode.pageDigestBytes) else {
                throw RepositoryError(.corrupt, "\(name) has page digests that do not fit its file")
            }
            let scount = try r.int()
            guard scount <= r.remaining / 3 else { throw RepositoryError(.corrupt, "\(name) has a truncated slice list") }
            node.slices.reserveCapacity(scount)
            var total: UInt64 = 0
            for _ in 0..<scount {
                let c = try r.varint(), o = try r.varint(), l = try r.varint()
                // Every slice names one of the node's chunks, inside a chunk's largest size.
                guard c < UInt64(count), o <= UInt64(UInt32.max), l > 0, l <= UInt64(UInt32.max) - o else {
                    throw RepositoryError(.corrupt, "\(name) has a slice outside its chunks")
                }
                total += l
                node.slices.append(.init(chunk: UInt32(c), offset: UInt32(o), length: UInt32(l)))
            }
            guard total == size else { throw RepositoryError(.corrupt, "\(name) has slices that do not add up to its size") }
        }
        if flags.contains(.pageDeltas) {
            guard version >= 4, flags.contains(.paged) else { throw RepositoryError(.corrupt, "\(name) has page deltas where none can be") }
            let dcount = try r.int()
            let fullPages = size / 8192
            guard dcount <= r.remaining / 4, UInt64(dcount) <= fullPages else { throw RepositoryError(.corrupt, "\(name) has a truncated page delta list") }
            node.pageDeltas.reserveCapacity(dcount)
            var page: UInt64 = 0
            for i in 0..<dcount {
                let gap = try r.varint(), c = try r.varint(), o = try r.varint(), l = try r.varint()
                // Pages increase, are whole pages of the file, and each delta lies in one of its chunks.
                guard gap > 0 || i == 0, gap < fullPages - page, c < UInt64(count), o <= UInt64(UInt32.max), l > 0, l <= UInt64(UInt32.max) - o else {
                    throw RepositoryError(.corrupt, "\(name) has a page delta outside its file or chunks")
                }
                page += gap
                node.pageDeltas.append(.init(page: UInt32(page), chunk: UInt32(c), offset: UInt32(o), length: UInt32(l)))
            }
        }
        return node
    }

    /// Steps over the fields of one node after its path, checking only that they are there.
    fileprivate static func skipNode(_ r: inout ByteReader, version: Int, name: String) throws {
        let v2 = version >= 2
        for _ in 0..<(v2 ? 11 : 8) { _ = try r.varint() }  // mode, mtime (2), [ctime (2)], uid, gid, size, device, inode, [rdev]
        let flags = TreeNode.Flags(rawValue: try r.u8())
        _ = try r.data()
        if v2 {
            let xcount = try r.int()
            guard xcount <= r.remaining / 2 else { throw RepositoryError(.corrupt, "\(name) has a truncated attribute list") }
            for _ in 0..<xcount {
                _ = try r.data()
                _ = try r.data()
            }
            let ecount = try r.int()
            guard ecount <= r.remaining / 2 else { throw RepositoryError(.corrupt, "\(name) has a truncated extent list") }
            for _ in 0..<(2 * ecount) { _ = try r.varint() }
        }
        let count = try r.int()
        guard count <= r.remaining / 32 else { throw RepositoryError(.corrupt, "\(name) has a truncated chunk list") }
        _ = try r.raw(32 * count)
        if flags.contains(.paged) {
            guard version >= 3 else { throw RepositoryError(.corrupt, "\(name) has a paged node where none can be") }
            _ = try r.data()
            let scount = try r.int()
            guard scount <= r.remaining / 3 else { throw RepositoryError(.corrupt, "\(name) has a truncated slice list") }
            for _ in 0..<(3 * scount) { _ = try r.varint() }
        }
        if flags.contains(.pageDeltas) {
            guard version >= 4, flags.contains(.paged) else { throw RepositoryError(.corrupt, "\(name) has page deltas where none can be") }
            let dcount = try r.int()
            guard dcount <= r.remaining / 4 else { throw RepositoryError(.corrupt, "\(name) has a truncated page delta list") }
            for _ in 0..<(4 * dcount) { _ = try r.varint() }
        }
    }
}

/// A snapshot manifest: what one backup run produced. Stored as JSON inside a sealed object at
/// `tenants/<t>/snapshots/<id>`, where the id is the SHA-256 of the JSON bytes.
public struct SnapshotManifest: Codable, Sendable, Equatable {
    /// One backed-up root directory and the label its contents appear under in the tree.
    public struct Root: Codable, Sendable, Equatable {
        public var path: String
        public var label: String
        public init(path: String, label: String) {
            self.path = path
            self.label = label
        }
    }

    /// Counts from the run that made the snapshot.
    public struct Stats: Codable, Sendable, Equatable {
        public var files = 0
        public var directories = 0
        public var symlinks = 0
        public var bytes: UInt64 = 0
        /// Files read again (new or changed since the parent); the rest were reused unread.
        public var filesRead = 0
        public var bytesRead: UInt64 = 0
        public var newBlobs = 0
        public var newBytesStored: UInt64 = 0
        public var changedDuringBackup: [String] = []
        public var skipped: [String] = []
        public init() {}
    }

    public var format = "tresor-snapshot"
    public var version = 1
    public var tenant: String
    /// What the snapshot holds: documents, or a PostgreSQL base backup.
    public var kind: SnapshotKind
    public var time: String
    public var hostname: String
    public var roots: [Root]
    public var parent: String?
    /// Ids of the tree blobs, in order; concatenated, their contents are the ``TreeCodec`` stream.
    public var tree: [String]
    public var stats: Stats
    /// For `pg-base` snapshots: where in the WAL the base backup starts and ends.
    public var postgres: PostgresBackupInfo?

    public init(
        tenant: String, kind: SnapshotKind, time: String, hostname: String, roots: [Root], parent: String?,
        tree: [String], stats: Stats
    ) {
        self.tenant = tenant
        self.kind = kind
        self.time = time
        self.hostname = hostname
        self.roots = roots
        self.parent = parent
        self.tree = tree
        self.stats = stats
    }

    public var date: Date? { TimeFormat.parse(time) }

    /// ``time`` as a date for choosing and ordering snapshots by time. The manifest is
    /// authenticated, so a time that cannot be read is a writer's fault: it throws (`corrupt`)
    /// rather than sorting the snapshot first or last, where it would be skipped unseen.
    public func checkedDate() throws -> Date {
        guard let d = date else {
            throw RepositoryError(.corrupt, "a snapshot of tenant '\(tenant)' has a time that cannot be read: '\(time)'")
        }
        return d
    }

    /// Reads the manifest stored under `key`. JSON that is no manifest is damage (`corrupt`);
    /// an authentic manifest of a kind this build does not know is not, and throws
    /// ``SnapshotKind``'s `failed` error naming the key.
    public static func decode(_ json: [UInt8], key: String) throws -> SnapshotManifest {
        do {
            return try JSONDecoder().decode(SnapshotManifest.self, from: Data(json))
        } catch let e as RepositoryError {
            throw RepositoryError(e.code, "\(key): \(e.message)", hint: e.hint)
        } catch {
            throw RepositoryError(.corrupt, "\(key) is not a valid snapshot manifest")
        }
    }
}

/// What a `pg-base` snapshot records about the base backup it holds. A restore needs the WAL from
/// `startLSN` to `endLSN` on `timeline`; any recovery target before `endLSN`/`endTime` is refused.
public struct PostgresBackupInfo: Codable, Sendable, Equatable {
    /// `X/X` as PostgreSQL prints LSNs.
    public var startLSN: String
    public var endLSN: String
    public var timeline: UInt32
    public var endTimeline: UInt32
    /// The database system identifier (`IDENTIFY_SYSTEM`), so WAL of another cluster is never mixed in.
    public var systemID: String
    public var startTime: String
    /// When the server confirmed the backup end (after its WAL was archived).
    public var endTime: String
    /// The first WAL segment the restore needs.
    public var startWAL: String
    public var endWAL: String

    public init(
        startLSN: String, endLSN: String, timeline: UInt32, endTimeline: UInt32, systemID: String,
        startTime: String, endTime: String, startWAL: String, endWAL: String
    ) {
        self.startLSN = startLSN
        self.endLSN = endLSN
        self.timeline = timeline
        self.endTimeline = endTimeline
        self.systemID = systemID
        self.startTime = startTime
        self.endTime = endTime
        self.startWAL = startWAL
        self.endWAL = endWAL
    }
}
