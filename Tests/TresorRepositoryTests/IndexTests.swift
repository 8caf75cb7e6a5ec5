import Testing
import TresorCore
import TresorTestSupport

@testable import TresorRepository

/// The compact index (issue 15) must answer exactly what was added, as a plain dictionary would.
@Suite struct IndexTests {
    /// Deterministic ids; `weak` ones share three of their four words so they collide in any
    /// hash built from part of the id, exercising the table's probing.
    private struct Ids {
        var random = SeededRandom(seed: 0x1234_5678_9ABC_DEF0)
        mutating func word() -> UInt64 { random.next() }
        mutating func next(weak: Bool) -> ObjectID {
            var id = ObjectID([UInt8](repeating: 0, count: 32))
            if weak { id.w3 = word() } else { id.w0 = word(); id.w1 = word(); id.w2 = word(); id.w3 = word() }
            return id
        }
    }

    private struct Expected: Equatable {
        var pack: ObjectID, offset: UInt32, length: UInt32, rawLength: UInt32, type: BlobType, compression: BlobCompression
    }

    private static func expected(_ l: BlobLocation) -> Expected {
        Expected(pack: l.pack, offset: l.offset, length: l.length, rawLength: l.rawLength, type: l.type, compression: l.compression)
    }

    @Test func indexReturnsTheLastAddedLocationOfEveryBlobAcrossSegmentsAndPacks() {
        var ids = Ids()
        let index = RepositoryIndex()
        var model: [ObjectID: Expected] = [:]
        var modelPackSizes: [ObjectID: Int] = [:]
        var everyBlob: [ObjectID] = []
        // 3 index objects × 120 packs × 200 blobs = 72 000 blobs: more than one 65 536-record segment.
        for file in 0..<3 {
            var packs: [IndexFile.Pack] = []
            for p in 0..<120 {
                let packID = ids.next(weak: false)
                var entries: [PackEntry] = []
                for b in 0..<200 {
                    let e = PackEntry(
                        id: ids.next(weak: b % 3 == 0), type: b % 2 == 0 ? .data : .tree,
                        compression: b % 5 == 0 ? .zstd : .none, offset: UInt32(b * 97),
                        length: UInt32(50 + b), rawLength: UInt32(10 + b + p))
                    entries.append(e)
                }
                packs.append(.init(id: packID, size: 1000 + file * 1000 + p, entries: entries))
            }
            for p in packs {
                modelPackSizes[p.id] = p.size
                for e in p.entries {
                    model[e.id] = Expected(pack: p.id, offset: e.offset, length: e.length, rawLength: e.rawLength, type: e.type, compression: e.compression)
                    everyBlob.append(e.id)
                }
            }
            index.add(IndexFile(packs: packs), indexID: ids.next(weak: false))
        }
        // Re-add two known blobs in a new pack at new offsets: the later location must win.
        let movedPack = ids.next(weak: false)
        let moved = [everyBlob[5], everyBlob[70_000]]
        let again = IndexFile(packs: [
            .init(
                id: movedPack, size: 77,
                entries: moved.enumerated().map { i, id in
                    PackEntry(id: id, type: .tree, compression: .zstd, offset: UInt32(1000 + i), length: 9, rawLength: 3)
                })
        ])
        index.add(again, indexID: nil)
        for (i, id) in moved.enumerated() {
            model[id] = Expected(pack: movedPack, offset: UInt32(1000 + i), length: 9, rawLength: 3, type: .tree, compression: .zstd)
        }
        modelPackSizes[movedPack] = 77

        #expect(everyBlob.count == 72_000)
        #expect(index.blobCount == model.count)
        #expect(model.count == 72_000)
        var wrong = 0
        for (id, want) in model where index.location(of: id).map(Self.expected) != want || !index.contains(id) { wrong += 1 }
        #expect(wrong == 0)
        var absent = ids
        #expect(!(0..<1000).contains { _ in index.contains(absent.next(weak: true)) || index.location(of: absent.next(weak: false)) != nil })
        #expect(index.packSizes == modelPackSizes)
        #expect(index.indexObjects.count == 3)

        var grouped: [ObjectID: Set<ObjectID>] = [:]
        for (id, e) in model { grouped[e.pack, default: []].insert(id) }
        #expect(index.blobCountsByPack() == grouped.mapValues(\.count))
        // Used bytes per pack, for prune: every third blob counts as used.
        let usedIDs = Set(model.keys.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
        var usedModel: [ObjectID: Int] = grouped.mapValues { _ in 0 }
        for (id, e) in model where usedIDs.contains(id) { usedModel[e.pack, default: 0] += Int(e.length) }
        var marks = BlobMarks()
        index.mark(usedIDs, in: &marks)
        index.mark([ids.next(weak: false)], in: &marks)  // not in the index: ignored
        #expect(index.usedBytesByPack(marks) == usedModel)
        #expect(model.keys.allSatisfy { index.isMarked($0, in: marks) == usedIDs.contains($0) })
        #expect(index.usedBytesByPack(BlobMarks()) == grouped.mapValues { _ in 0 })

        let somePack = model[everyBlob[400]]!.pack
        let unknownPack = ids.next(weak: false)
        let chosen = index.blobs(inPacks: [movedPack, somePack, unknownPack])
        #expect(Set(chosen.map(\.0)) == grouped[movedPack]!.union(grouped[somePack]!))
        #expect(chosen.count == 2 + grouped[somePack]!.count)
        #expect(chosen.allSatisfy { model[$0.0] == Self.expected($0.1) })
        #expect(index.blobs(inPacks: [unknownPack]).isEmpty)
    }

    @Test func emptyIndexFindsNothing() {
        let index = RepositoryIndex()
        let id = ObjectID([UInt8](repeating: 9, count: 32))
        #expect(index.location(of: id) == nil && !index.contains(id) && index.blobCount == 0)
        #expect(index.usedBytesByPack(BlobMarks()).isEmpty && index.blobCountsByPack().isEmpty && index.blobs(inPacks: [id]).isEmpty)
    }
}

extension IndexTests {
    /// Index objects are loaded on several threads at once (`loadIndexReportingDamage`).
    @Test func indexLoadedFromFourThreadsAtOnceLosesNoBlob() {
        let index = RepositoryIndex()
        var random = SeededRandom(seed: 42)
        func newID() -> ObjectID {
            var id = ObjectID([UInt8](repeating: 0, count: 32))
            id.w0 = random.next(); id.w1 = random.next(); id.w2 = random.next(); id.w3 = random.next()
            return id
        }
        let files = (0..<8).map { _ in
            IndexFile(
                packs: (0..<10).map { _ in
                    .init(
                        id: newID(), size: 1,
                        entries: (0..<500).map { i in
                            PackEntry(id: newID(), type: .data, compression: .none, offset: UInt32(i), length: 1, rawLength: 1)
                        })
                })
        }
        runOnThreads(4, name: "index-test") { t in
            for f in stride(from: t, to: files.count, by: 4) { index.add(files[f], indexID: nil) }
        }
        #expect(index.blobCount == 8 * 10 * 500)
        let missing = files.flatMap(\.packs).flatMap { p in
            p.entries.filter { index.location(of: $0.id)?.pack != p.id || index.location(of: $0.id)?.offset != $0.offset }
        }
        #expect(missing.isEmpty)
    }
}
