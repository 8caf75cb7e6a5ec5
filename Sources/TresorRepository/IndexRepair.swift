import TresorCore
import TresorStore

extension TenantRepository {
    /// Describes packs from their own headers (packs are self-describing, see ``PackFormat``):
    /// the index entries `repair index` writes and `check` uses for packs whose index object is
    /// damaged. `packs` maps pack id → size in the store. Each pack costs two ranged reads.
    ///
    /// A pack whose header is damaged is returned in `damaged` with the reason (its blobs cannot
    /// be located without it); a store failure is thrown.
    public func describePacksFromHeaders(_ packs: [ObjectID: Int], threads: Int = 4) throws -> (packs: [IndexFile.Pack], damaged: [ObjectID: String]) {
        let queue = BlockingQueue<(ObjectID, Int)>(capacity: max(1, packs.count))
        for p in packs.sorted(by: { $0.key < $1.key }) { queue.push((p.key, p.value)) }
        queue.close()
        let found = Locked((packs: [IndexFile.Pack](), damaged: [ObjectID: String](), error: Error?.none))
        runOnThreads(min(threads, max(1, packs.count)), name: "pack-headers") { _ in
            while let (id, size) = queue.pop() {
                if found.withLock({ $0.error != nil }) { return }
                do {
                    let header = try PackFormat.readHeader(
                        store: self.store, key: self.layout.pack(id), size: size,
                        keys: self.keys, name: id.short)
                    found.withLock { $0.packs.append(IndexFile.Pack(id: id, size: size, entries: header.entries)) }
                } catch  where RepositoryError.isDamage(error) {
                    found.withLock { $0.damaged[id] = RepositoryError.describe(error) }
                } catch {
                    found.withLock { if $0.error == nil { $0.error = error } }
                }
            }
        }
        let result = found.current
        if let e = result.error { throw e }
        return (result.packs.sorted { $0.id < $1.id }, result.damaged)
    }
}
