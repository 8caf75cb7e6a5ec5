import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorDocuments
import TresorEvidence
import TresorRepository

#if canImport(Glibc)
import Glibc
#endif

/// A snapshot named in browse results.
public struct SnapshotRef: Codable, Sendable, Equatable {
    public var id: String
    public var short: String
    public var time: String
    init(_ s: (id: ObjectID, manifest: SnapshotManifest)) {
        id = s.id.hex
        short = s.id.short
        time = s.manifest.time
    }
}

/// One entry of a snapshot's tree as `docs ls` shows it.
public struct BrowseEntry: Codable, Sendable {
    /// The path, with bytes that are not printable UTF-8 as `\xNN` (see `escaped`).
    public var path: String
    /// True when `path` is escaped: the name is not UTF-8 or holds control characters.
    public var escaped: Bool
    /// The path's bytes in hex, given only when `escaped`.
    public var pathHex: String?
    public var kind: String
    public var size: UInt64
    public var mode: String
    public var mtime: String
    public var linkTarget: String?

    init(_ n: TreeNode) {
        let s = BrowsePath.shown(n.pathBytes)
        path = s.text
        escaped = s.escaped
        pathHex = s.escaped ? Hex.encode(n.pathBytes) : nil
        kind = "\(n.kind)"
        size = n.size
        mode = String(n.mode, radix: 8)
        mtime = TimeFormat.string(Date(timeIntervalSince1970: Double(n.mtimeSeconds)))
        linkTarget = n.kind == .symlink ? BrowsePath.shown(n.linkTargetBytes).text : nil
    }
}

/// What `docs ls` found.
public struct ListResult: Codable, Sendable {
    public var tenant: String
    public var snapshot: SnapshotRef
    public var entries: [BrowseEntry]
}

/// What `docs find` found: per matching path, its versions over the snapshots searched.
public struct FindResult: Codable, Sendable {
    public struct Version: Codable, Sendable {
        /// SHA-256 over the file's size, extents and chunk ids: equal for equal content.
        public var content: String
        public var size: UInt64
        public var mtime: String
        public var first: SnapshotRef
        public var last: SnapshotRef
        public var snapshots: Int
    }

    public struct File: Codable, Sendable {
        public var path: String
        public var escaped: Bool
        public var versions: [Version]
        /// Snapshots in which the path was gone after being in the one before.
        public var deletedIn: [SnapshotRef]
        /// Whether the newest snapshot searched holds it.
        public var inLastSnapshot: Bool
    }

    public var tenant: String
    public var pattern: String
    public var snapshotsSearched: Int
    public var treeBlobsRead: Int
    public var files: [File]
}

/// What `docs diff` found.
public struct DiffResult: Codable, Sendable {
    public struct Item: Codable, Sendable {
        public var path: String
        public var escaped: Bool
        public var kind: String
        /// `content` or `metadata` for changed paths.
        public var change: String?
        public var oldSize: UInt64?
        public var newSize: UInt64?
    }

    public var tenant: String
    public var from: SnapshotRef
    public var to: SnapshotRef
    public var added: [Item]
    public var removed: [Item]
    public var changed: [Item]
    public var addedBytes: UInt64
    public var removedBytes: UInt64
    /// Bytes of files whose content changed, counted at their new size.
    public var changedBytes: UInt64
}

/// What `docs dump` did (the content itself went to the output).
public struct DumpResult: Codable, Sendable {
    public var tenant: String
    public var snapshot: SnapshotRef
    public var path: String
    public var bytes: UInt64
    public var seconds: Double
    public var outcome: Outcome
}

extension Installation {
    /// Opens the tenant's repository (on `storeName`, else its primary store) with its index
    /// and snapshots, for the browse commands.
    private func browse(
        _ id: TenantID, store storeName: String?
    ) throws -> (repo: TenantRepository, index: RepositoryIndex, snapshots: [(id: ObjectID, manifest: SnapshotManifest)]) {
        let tenant = try self.tenant(id)
        let repo = try repository(for: tenant, storeName: storeName, create: false)
        let snapshots = try repo.snapshots()
        return (repo, try repo.loadIndex(), snapshots)
    }

    /// Reads a path argument, or refuses it (exit 2).
    public static func browsePath(_ text: String) throws -> [UInt8] {
        guard let p = BrowsePath.parse(text) else {
            throw CoreError.usage(
                "'\(text)' is not a path inside a snapshot",
                hint:
                    "paths start with a root's name (e.g. docs/invoices/a.pdf), have no empty, '.' or '..' segments; write a byte that is not UTF-8, or a backslash, as \\xNN"
            )
        }
        return p
    }

    /// `tresor docs ls T [PATH]`.
    public func listDocuments(
        tenant id: TenantID, snapshot selector: String, path: String?, recursive: Bool,
        store: String? = nil
    ) throws -> ListResult {
        let name = id.rawValue
        let dir = try path.map(Self.browsePath)
        let b = try browse(id, store: store)
        let chosen = try Self.selectSnapshot(selector, from: b.snapshots, tenant: name)
        let nodes = try TreeBlobCache(repository: b.repo, index: b.index).nodes(of: chosen.manifest)
        var entries: [TreeNode]
        if let dir {
            guard let at = nodes.first(where: { $0.pathBytes == dir }) else {
                throw CoreError.usage(
                    "snapshot \(chosen.id.short) has nothing at '\(path ?? "")'", hint: "tresor docs ls \(name) --snapshot \(chosen.id.short)")
            }
            entries = at.kind == .directory ? BrowsePath.children(of: dir, in: nodes, recursive: recursive) : [at]
        } else {
            entries = BrowsePath.children(of: nil, in: nodes, recursive: recursive)
        }
        return ListResult(tenant: name, snapshot: SnapshotRef(chosen), entries: entries.map(BrowseEntry.init))
    }

    /// `tresor docs find T PATTERN`: every version of every file matching `pattern` in the
    /// document snapshots from `since` to `until` (a bare date as `until` means the end of that
    /// day). One snapshot's tree is in memory at a time; what is kept per matching path is its
    /// distinct versions, not its snapshots.
    public func findDocuments(
        tenant id: TenantID, pattern: String, since: String?, until: String?, ignoreCase: Bool,
        store: String? = nil
    ) throws -> FindResult {
        let name = id.rawValue
        func date(_ text: String?, endOfDay: Bool) throws -> Date? {
            guard let text else { return nil }
            guard let d = TimeFormat.parse(text) else {
                throw CoreError.usage("cannot read time '\(text)'", hint: "use a date (2026-11-27) or RFC 3339 (2026-11-27T10:00:00Z)")
            }
            return endOfDay && text.count == 10 ? d.addingTimeInterval(86400 - 0.001) : d
        }
        let from = try date(since, endOfDay: false), to = try date(until, endOfDay: true)
        guard !pattern.isEmpty else { throw CoreError.usage("the pattern is empty", hint: "e.g. tresor docs find \(name) 'invoice-*.pdf'") }
        let b = try browse(id, store: store)
        let chosen = try b.snapshots.filter { s in
            guard s.manifest.kind == .documents else { return false }
            let d = try s.manifest.checkedDate()
            return (from.map { d >= $0 } ?? true) && (to.map { d <= $0 } ?? true)
        }
        if chosen.isEmpty {
            throw CoreError.usage(
                "tenant '\(name)' has no document snapshots\(since.map { " from \($0)" } ?? "")\(until.map { " until \($0)" } ?? "")",
                hint: "tresor snapshots \(name)")
        }
        struct History {
            var versions: [(key: ObjectID, version: FindResult.Version)] = []
            var lastSeen = -1
            var deletedIn: [SnapshotRef] = []
        }
        var histories: [[UInt8]: History] = [:]
        var order: [[UInt8]] = []
        let glob = TreeGlob(pattern, ignoreCase: ignoreCase)
        let cache = try TreeBlobCache(repository: b.repo, index: b.index, capacity: 8 << 20)
        for (i, s) in chosen.enumerated() {
            let ref = SnapshotRef(s)
            for n in try cache.nodes(of: s.manifest, including: { $0 == .file && glob.matches($1) }) {
                let key = TreeDiff.contentKey(n)
                var h =
                    histories[n.pathBytes]
                    ?? {
                        order.append(n.pathBytes); return History()
                    }()
                if let v = h.versions.firstIndex(where: { $0.key == key }) {
                    h.versions[v].version.last = ref
                    h.versions[v].version.snapshots += 1
                } else {
                    h.versions.append(
                        (
                            key,
                            .init(
                                content: key.hex, size: n.size,
                                mtime: TimeFormat.string(Date(timeIntervalSince1970: Double(n.mtimeSeconds))),
                                first: ref, last: ref, snapshots: 1)
                        ))
                }
                h.lastSeen = i
                histories[n.pathBytes] = h
            }
            if i > 0 {
                for p in order where histories[p]!.lastSeen == i - 1 { histories[p]!.deletedIn.append(ref) }
            }
        }
        let files = order.map { p in
            let h = histories[p]!
            let s = BrowsePath.shown(p)
            return FindResult.File(
                path: s.text, escaped: s.escaped, versions: h.versions.map(\.version), deletedIn: h.deletedIn,
                inLastSnapshot: h.lastSeen == chosen.count - 1)
        }
        return FindResult(tenant: name, pattern: pattern, snapshotsSearched: chosen.count, treeBlobsRead: cache.blobsRead, files: files)
    }

    /// `tresor docs diff T A B`.
    public func diffDocuments(tenant id: TenantID, from a: String, to b2: String, store: String? = nil) throws -> DiffResult {
        let name = id.rawValue
        let b = try browse(id, store: store)
        let old = try Self.selectSnapshot(a, from: b.snapshots, tenant: name)
        let new = try Self.selectSnapshot(b2, from: b.snapshots, tenant: name)
        let cache = try TreeBlobCache(repository: b.repo, index: b.index)
        let entries = TreeDiff.diff(old: try cache.nodes(of: old.manifest), new: try cache.nodes(of: new.manifest))
        var r = DiffResult(
            tenant: name, from: SnapshotRef(old), to: SnapshotRef(new), added: [], removed: [], changed: [],
            addedBytes: 0, removedBytes: 0, changedBytes: 0)
        for e in entries {
            let node = (e.new ?? e.old)!
            let s = BrowsePath.shown(node.pathBytes)
            let item = DiffResult.Item(
                path: s.text, escaped: s.escaped, kind: "\(node.kind)", change: e.change?.rawValue,
                oldSize: e.old?.size, newSize: e.new?.size)
            switch (e.old, e.new) {
            case (nil, let n?):
                r.added.append(item)
                r.addedBytes += n.kind == .file ? n.size : 0
            case (let o?, nil):
                r.removed.append(item)
                r.removedBytes += o.kind == .file ? o.size : 0
            case (_, let n?):
                r.changed.append(item)
                if e.change == .content, n.kind == .file { r.changedBytes += n.size }
            default: break
            }
        }
        return r
    }

    /// `tresor docs dump T PATH`: one file's content written to `fd` as it is read, one chunk at
    /// a time. The access is recorded (a `docs-dump` run, and a `document-access` evidence
    /// record written before the first byte goes out, so no content leaves without its record).
    public func dumpDocument(
        tenant id: TenantID, path text: String, snapshot selector: String, store: String? = nil,
        by: String, to fd: Int32
    ) throws -> DumpResult {
        let name = id.rawValue
        let path = try Self.browsePath(text)
        let wallStart = Date()
        let b = try browse(id, store: store)
        let chosen = try Self.selectSnapshot(selector, from: b.snapshots, tenant: name)
        // Retention keeps a snapshot that is being read.
        let unpin = try SnapshotPins(home: home).pin(tenant: id, snapshot: chosen.id.hex)
        defer { unpin() }
        let nodes = try TreeBlobCache(repository: b.repo, index: b.index).nodes(of: chosen.manifest)
        guard let node = nodes.first(where: { $0.pathBytes == path }) else {
            throw CoreError.usage(
                "snapshot \(chosen.id.short) has nothing at '\(text)'", hint: "tresor docs find \(name) 'NAME' to see where and when it exists")
        }
        guard node.kind == .file else {
            throw CoreError.usage(
                "'\(text)' is a \(node.kind), not a file, in snapshot \(chosen.id.short)",
                hint: node.kind == .directory
                    ? "tresor docs restore \(name) --to DIR --path \(text)" : "tresor docs ls \(name) --snapshot \(chosen.id.short) \(text) --long")
        }
        return try recordRun(.documentsDump, tenant: id) { () throws -> DumpResult in
            try recordAccess(
                tenant: id, action: "dump", snapshot: chosen.id, paths: [path], by: by, store: store,
                files: 1, bytes: node.size)
            var written: UInt64 = 0
            let reader = try TreeReader(repository: b.repo, index: b.index)
            try reader.forEach([node]) { _, content in
                guard let content else { return }
                while try content.next({
                    try Self.writeAll(fd, $0); written += UInt64($0.count)
                }) {}
            }
            let result = DumpResult(
                tenant: name, snapshot: SnapshotRef(chosen), path: BrowsePath.shown(path).text, bytes: written,
                seconds: Date().timeIntervalSince(wallStart), outcome: .ok)
            return result
        } status: { _ in
            .ok
        } detail: {
            $0
        }
    }

    private static func writeAll(_ fd: Int32, _ data: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < data.count {
            let n = write(fd, data.baseAddress! + done, data.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw CoreError.failed("cannot write the file's content to the output: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Writes a `document-access` evidence record: who read which paths of which snapshot of a
    /// tenant. Paths are customer content (names of a customer's files) and the log can never be
    /// redacted, so each is recorded as the SHA-256 of its bytes; the catalog run keeps the path.
    func recordAccess(
        tenant: TenantID, action: String, snapshot: ObjectID, paths: [[UInt8]], by: String, store: String?,
        files: Int, bytes: UInt64
    ) throws {
        try recordEvidence(
            kind: .documentAccess, tenant: tenant,
            payload: [
                "action": .string(action),
                "by": .string(by),
                "snapshot": .string(snapshot.hex),
                "path_sha256": .array(paths.map { .string(SHA256.hash($0).hex) }),
                "store": store.map { .string($0) } ?? .null,
                "files": .int(Int64(files)),
                "bytes": .int(Int64(bytes)),
            ])
    }

    /// `tresor docs restore T --to DIR --path P [--path P2 …] [--store NAME]`: restores the
    /// given files or directories (each with everything below it). Each path must exist in the
    /// snapshot. A restore of chosen paths is recorded as a `document-access` evidence record
    /// before anything is written.
    public func restoreDocuments(
        tenant id: TenantID, to target: String, snapshot selector: String, paths: [String],
        store: String? = nil, by: String, sync: Bool = true,
        progress: (@Sendable (UInt64, UInt64) -> Void)? = nil
    ) throws -> RestoreResult {
        let name = id.rawValue
        let wanted = try paths.map(Self.browsePath)
        let wallStart = Date()
        // An unknown or deleted tenant is a usage error, not a run (a deleted tenant keeps no rows).
        _ = try tenant(id)
        // Recorded from here on: a restore that fails (a store out of reach, a damaged tree) is a
        // failed run in the catalog.
        return try run(
            Job(.documentsRestore, tenant: id) { [self] in
                let b = try browse(id, store: store)
                let chosen = try Self.selectSnapshot(selector, from: b.snapshots, tenant: name)
                let unpin = try SnapshotPins(home: home).pin(tenant: id, snapshot: chosen.id.hex)
                defer { unpin() }
                // The tree is read node by node (``TreeNodeStream``), never held whole: once here when
                // paths are chosen, then by the restorer (see ``TreeRestorer/restore(passes:to:)``).
                func under(_ p: [UInt8], _ n: TreeNode) -> Bool {
                    n.pathBytes == p || (n.pathBytes.count > p.count && n.pathBytes[p.count] == 0x2F && n.pathBytes.starts(with: p))
                }
                func walk() throws -> () throws -> TreeNode? {
                    let stream = try TreeNodeStream(repository: b.repo, index: b.index, manifest: chosen.manifest)
                    return {
                        while let n = try stream.next() {
                            if wanted.isEmpty || wanted.contains(where: { under($0, n) }) { return n }
                        }
                        return nil
                    }
                }
                let absolute = URL(fileURLWithPath: target).standardizedFileURL.path
                if !wanted.isEmpty {
                    var found = Set<[UInt8]>(), files = 0, bytes: UInt64 = 0
                    let nodes = try walk()
                    while let n = try nodes() {
                        if wanted.contains(n.pathBytes) { found.insert(n.pathBytes) }
                        if n.kind == .file {
                            files += 1
                            bytes += n.size
                        }
                    }
                    for (p, text) in zip(wanted, paths) where !found.contains(p) {
                        throw CoreError.usage(
                            "snapshot \(chosen.id.short) has nothing at '\(text)'",
                            hint:
                                "paths start with the root's name, e.g. \(chosen.manifest.roots.first?.label ?? "docs")/...; tresor docs ls \(name) --snapshot \(chosen.id.short)"
                        )
                    }
                    try recordAccess(
                        tenant: id, action: "restore", snapshot: chosen.id, paths: wanted, by: by, store: store,
                        files: files, bytes: bytes)
                }
                let report = try DocumentRestore(repository: b.repo, index: b.index, sync: sync, progress: progress).restore(passes: walk, to: absolute)
                return RestoreResult(
                    tenant: name, snapshot: chosen.id.hex, target: absolute,
                    paths: wanted.isEmpty ? nil : wanted.map { BrowsePath.shown($0).text }, report: report,
                    seconds: Date().timeIntervalSince(wallStart),
                    outcome: report.failed.isEmpty && report.incomplete.isEmpty ? .ok : .problemFound)
            })
    }
}
