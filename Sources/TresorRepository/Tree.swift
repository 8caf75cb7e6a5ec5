import TresorCore

/// One entry of a snapshot's file tree.
public struct TreeNode: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case file = 1
        case directory = 2
        case symlink = 3
    }

    /// Flags recorded with a node.
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The file kept changing while it was read; its content may mix old and new bytes.
        public static let changedDuringBackup = Flags(rawValue: 1)
    }

    /// Path relative to the snapshot's top, `/`-separated, first segment is the root's label.
    public var path: String
    public var kind: Kind
    /// Permission bits (including setuid, setgid, sticky).
    public var mode: UInt32
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var device: UInt64
    public var inode: UInt64
    public var flags: Flags
    /// The link target of a symlink, as stored on disk.
    public var linkTarget: String
    /// Content chunk ids of a file, in order.
    public var chunks: [ObjectID]

    public init(path: String, kind: Kind, mode: UInt32, mtimeSeconds: Int64, mtimeNanoseconds: UInt32,
                uid: UInt32, gid: UInt32, size: UInt64, device: UInt64, inode: UInt64,
                flags: Flags = [], linkTarget: String = "", chunks: [ObjectID] = []) {
        self.path = path
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
        self.linkTarget = linkTarget
        self.chunks = chunks
    }
}

/// The binary encoding of a snapshot's file tree.
///
/// `"TTR1"` then nodes in depth-first, name-sorted order (a directory before its contents), each:
/// kind (1) ‖ path ‖ mode ‖ mtime seconds (zig-zag) ‖ mtime nanoseconds ‖ uid ‖ gid ‖ size ‖
/// device ‖ inode ‖ flags (1) ‖ link target ‖ chunk count ‖ chunk ids (32 each). Strings are a
/// varint length and UTF-8 bytes; numbers are varints. The stream is split into `tree` blobs with
/// the tenant's chunker, so unchanged stretches of a tree are stored once across snapshots.
public enum TreeCodec {
    static let magic = Array("TTR1".utf8)

    public static func encode(_ nodes: [TreeNode]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + nodes.count * 96)
        w.raw(magic)
        for n in nodes {
            w.u8(n.kind.rawValue)
            w.string(n.path)
            w.varint(UInt64(n.mode))
            w.svarint(n.mtimeSeconds)
            w.varint(UInt64(n.mtimeNanoseconds))
            w.varint(UInt64(n.uid))
            w.varint(UInt64(n.gid))
            w.varint(n.size)
            w.varint(n.device)
            w.varint(n.inode)
            w.u8(n.flags.rawValue)
            w.string(n.linkTarget)
            w.varint(n.chunks.count)
            for c in n.chunks { w.id(c) }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], name: String) throws -> [TreeNode] {
        var r = ByteReader(bytes, what: name)
        guard Array(try r.raw(4)) == magic else { throw RepositoryError(.corrupt, "\(name) is not a tree (bad magic)") }
        var nodes: [TreeNode] = []
        while !r.isAtEnd {
            let k = try r.u8()
            guard let kind = TreeNode.Kind(rawValue: k) else { throw RepositoryError(.corrupt, "\(name) has an unknown node kind \(k)") }
            let path = try r.string()
            func u32() throws -> UInt32 {
                let v = try r.varint()
                guard v <= UInt64(UInt32.max) else { throw RepositoryError(.corrupt, "\(name) has an out-of-range field") }
                return UInt32(v)
            }
            let mode = try u32()
            let secs = try r.svarint()
            let nsec = try u32()
            let uid = try u32(), gid = try u32()
            let size = try r.varint(), dev = try r.varint(), ino = try r.varint()
            let flags = TreeNode.Flags(rawValue: try r.u8())
            let link = try r.string()
            let count = try r.int()
            guard count <= r.remaining / 32 else { throw RepositoryError(.corrupt, "\(name) has a truncated chunk list") }
            var chunks: [ObjectID] = []
            chunks.reserveCapacity(count)
            for _ in 0..<count { chunks.append(try r.id()) }
            nodes.append(TreeNode(path: path, kind: kind, mode: mode, mtimeSeconds: secs, mtimeNanoseconds: nsec,
                                  uid: uid, gid: gid, size: size, device: dev, inode: ino, flags: flags,
                                  linkTarget: link, chunks: chunks))
        }
        return nodes
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
    /// What the snapshot holds: `documents`, or `pg-base` (a PostgreSQL base backup).
    public var kind: String
    public var time: String
    public var hostname: String
    public var roots: [Root]
    public var parent: String?
    /// Ids of the tree blobs, in order; concatenated, their contents are the ``TreeCodec`` stream.
    public var tree: [String]
    public var stats: Stats
    /// For `pg-base` snapshots: where in the WAL the base backup starts and ends.
    public var postgres: PostgresBackupInfo?

    public init(tenant: String, kind: String, time: String, hostname: String, roots: [Root], parent: String?,
                tree: [String], stats: Stats) {
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

    public init(startLSN: String, endLSN: String, timeline: UInt32, endTimeline: UInt32, systemID: String,
                startTime: String, endTime: String, startWAL: String, endWAL: String) {
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

import Foundation
