import TresorCore

/// Reads a snapshot's tree one node at a time, fetching its tree blobs only as the nodes reach
/// them, so a walk over a tree of millions of entries holds about one tree blob and one node
/// rather than the whole tree (an incremental backup's parent, `check`, the pruner).
///
/// Nodes may straddle tree blobs (the tree is cut by the content-defined chunker): a node that
/// does not decode from what is loaded is tried again with the next blob appended, and only
/// when no blob is left is the failure the tree's.
public final class TreeNodeStream {
    private let repo: TenantRepository
    private let index: RepositoryIndex
    private let opener: BlobOpener
    private let name: String
    private let ids: [ObjectID]
    private var nextBlob = 0
    private var buffer: [UInt8] = []
    private var offset = 0
    private var version: Int?

    /// Throws on a malformed tree id; blobs are read later, by ``next()``.
    public init(repository: TenantRepository, index: RepositoryIndex, manifest: SnapshotManifest) throws {
        repo = repository
        self.index = index
        opener = try BlobOpener(keys: repository.keys)
        name = "tree of snapshot at \(manifest.time)"
        ids = try manifest.tree.map { hex in
            guard let id = ObjectID(hex: hex) else { throw RepositoryError(.corrupt, "snapshot at \(manifest.time) lists a malformed tree id") }
            return id
        }
    }

    /// Tree blobs read so far.
    public var blobsRead: Int { nextBlob }

    /// The next node in tree order; nil after the last.
    public func next() throws -> TreeNode? {
        if version == nil {
            while buffer.count < 4, try loadBlob() {}
            version = try readHeader()
        }
        while true {
            if offset == buffer.count, !(try loadBlob()) { return nil }
            do {
                return try decodeOne()
            } catch {
                // Most likely the node continues in the next blob; if there is none, the tree is damaged.
                guard try loadBlob() else { throw error }
            }
        }
    }

    private func readHeader() throws -> Int {
        var r = ByteReader(buffer, what: name)
        let version = try TreeCodec.readHeader(&r, name: name)
        offset = r.offset
        return version
    }

    private func decodeOne() throws -> TreeNode? {
        var r = ByteReader(buffer, what: name, offset: offset)
        // `include` is nil, so a node always comes back.
        let node = try TreeCodec.decodeNode(&r, version: version ?? 2, name: name, including: nil)
        offset = r.offset
        return node
    }

    /// Appends the next tree blob (dropping what was decoded already); false when none is left.
    private func loadBlob() throws -> Bool {
        guard nextBlob < ids.count else { return false }
        let blob = try repo.readBlob(ids[nextBlob], index: index, opener: opener)
        nextBlob += 1
        buffer.removeFirst(offset)
        offset = 0
        buffer += blob
        return true
    }
}
