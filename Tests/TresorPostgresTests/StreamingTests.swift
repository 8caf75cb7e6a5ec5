import Foundation
import Testing
import TresorCore
import TresorPostgres
import TresorRepository
import TresorStore
import TresorTestSupport

private let keys = TenantKeys(dataKey: Array(repeating: 7, count: 32)).wal
private let segmentSize = Int(WALName.segmentSize)

@Suite struct SegmentBufferTests {
    /// Deterministic "WAL": the byte at an LSN is `block[lsn % block.count]`, a prime-sized
    /// random block, so no two nearby positions (or segments) look alike.
    static let block: [UInt8] = {
        var rng = SeededRandom(seed: 5)
        return rng.bytes(65521)
    }()

    func wal(_ from: UInt64, _ count: Int) -> [UInt8] {
        let block = Self.block
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var at = Int(from % UInt64(block.count))
        while out.count < count {
            let n = min(block.count - at, count - out.count)
            out.append(contentsOf: block[at..<(at + n)])
            at = 0
        }
        return out
    }

    @Test func messagesAcrossASegmentBoundaryCompleteTheSegmentWithExactlyItsBytes() throws {
        let start = 3 * WALName.segmentSize
        let b = try SegmentBuffer(startingAt: start, timeline: 2)
        var completed: [(String, [UInt8])] = []
        var lsn = start
        // Odd-sized messages; the third crosses into the next segment.
        for size in [1000, segmentSize - 5000, 9000, 123] {
            let data = wal(lsn, size)
            try data.withUnsafeBytes { try b.append($0, at: lsn) { name, whole in completed.append((name.description, Array(whole))) } }
            lsn += UInt64(size)
        }
        #expect(completed.count == 1)
        #expect(completed.first?.0 == "000000020000000000000003")
        #expect(completed.first?.1 == wal(start, segmentSize))
        #expect(b.segment.description == "000000020000000000000004")
        #expect(b.received == 1000 + segmentSize - 5000 + 9000 + 123 - segmentSize)
        #expect(Array(b.bytes) == wal(start + WALName.segmentSize, b.received))
        #expect(b.position == lsn)
    }

    @Test func aGapOrAnOverlapIsRefusedAndAMisalignedStartToo() throws {
        let b = try SegmentBuffer(startingAt: 0, timeline: 1)
        try wal(0, 100).withUnsafeBytes { try b.append($0, at: 0) { _, _ in } }
        let gap = #expect(throws: PostgresError.self) { try wal(200, 10).withUnsafeBytes { try b.append($0, at: 200) { _, _ in } } }
        #expect(gap?.message.contains("expected 0/64") == true)
        #expect(throws: PostgresError.self) { try wal(50, 10).withUnsafeBytes { try b.append($0, at: 50) { _, _ in } } }
        #expect(throws: PostgresError.self) { try SegmentBuffer(startingAt: 8192, timeline: 1) }
    }

    @Test func aSegmentWhoseStoreFailedIsOfferedAgainWithTheNextMessage() throws {
        let b = try SegmentBuffer(startingAt: 0, timeline: 1)
        struct Down: Error {}
        #expect(throws: Down.self) {
            try wal(0, segmentSize).withUnsafeBytes { try b.append($0, at: 0) { _, _ in throw Down() } }
        }
        #expect(b.received == segmentSize, "the full segment is kept")
        var offered: [String] = []
        try wal(WALName.segmentSize, 10).withUnsafeBytes {
            try b.append($0, at: WALName.segmentSize) { name, whole in
                #expect(Array(whole) == wal(0, segmentSize))
                offered.append(name.description)
            }
        }
        #expect(offered == ["000000010000000000000000"])
        #expect(b.received == 10)
    }
}

@Suite struct StreamedWALTests {
    func archive(_ dir: TempDirectory) throws -> WALArchive {
        WALArchive(store: try LocalStore(root: dir.url), tenant: "acme", keys: keys, compressionLevel: 3, clock: SystemClock())
    }

    @Test func theStreamedPartOfASegmentIsServedPaddedUntilTheWholeSegmentIsArchived() throws {
        let dir = TempDirectory()
        let a = try archive(dir)
        let seg = try #require(WALName("000000010000000000000005"))
        var rng = SeededRandom(seed: 11)
        let whole = rng.text(segmentSize)
        let missing = #expect(throws: PostgresError.self) { try a.fetchForRecovery(seg) }
        #expect(missing?.code == .notFound)
        _ = try whole[0..<5000].withUnsafeBytes { try a.storeStreamed($0, segment: seg) }
        // A longer part replaces the shorter one.
        _ = try whole[0..<70000].withUnsafeBytes { try a.storeStreamed($0, segment: seg) }
        let served = try a.fetchForRecovery(seg)
        #expect(served.count == segmentSize)
        #expect(Array(served[0..<70000]) == Array(whole[0..<70000]))
        #expect(served[70000...].allSatisfy { $0 == 0 })
        #expect(try a.header(seg.with(kind: .streaming)).length == 70000)
        // The whole segment wins once it is archived, and the part can go.
        _ = try whole.withUnsafeBytes { try a.push($0, name: seg) }
        try a.removeStreamed(segment: seg)
        #expect(try a.fetchForRecovery(seg) == whole)
        #expect(try a.list().map(\.name.description) == ["000000010000000000000005"])
        // Only pg stream writes .streaming objects: wal-push refuses the name.
        let src = TempDirectory()
        try Data(whole[0..<10]).write(to: src.sub("000000010000000000000006.streaming"))
        #expect(throws: PostgresError.self) { try a.push(path: src.sub("000000010000000000000006.streaming").path) }
    }

    /// A restarted `pg stream` receives the current segment again from its start: its first
    /// flushes hold less than the previous run stored, and must not replace it.
    @Test func aRestartedStreamNeverReplacesALongerStreamedPartWithAShorterOne() throws {
        let dir = TempDirectory()
        let a = try archive(dir)
        let seg = try #require(WALName("000000010000000000000009"))
        var rng = SeededRandom(seed: 13)
        let whole = rng.text(segmentSize)
        #expect(try whole[0..<90000].withUnsafeBytes { try a.storeStreamed($0, segment: seg) })
        // The second run's first flush: a prefix of what is stored.
        #expect(try whole[0..<20000].withUnsafeBytes { try a.storeStreamed($0, segment: seg) } == false)
        #expect(try a.header(seg.with(kind: .streaming)).length == 90000)
        #expect(Array(try a.fetchForRecovery(seg)[0..<90000]) == Array(whole[0..<90000]))
        // Caught up and past it: stored again.
        #expect(try whole[0..<120000].withUnsafeBytes { try a.storeStreamed($0, segment: seg) })
        #expect(try a.header(seg.with(kind: .streaming)).length == 120000)
        // Different bytes (another history of that segment): the newer stream's bytes are stored.
        let other = rng.text(50000)
        #expect(try other.withUnsafeBytes { try a.storeStreamed($0, segment: seg) })
        #expect(try a.header(seg.with(kind: .streaming)).length == 50000)
    }

    @Test func headersOfEveryObjectAreListedInOrderWithTheirLengths() throws {
        let dir = TempDirectory()
        let a = try archive(dir)
        var rng = SeededRandom(seed: 12)
        let lengths = [7: 1000, 5: 3000, 6: 2000]
        for (segment, length) in lengths {
            _ = try rng.text(length).withUnsafeBytes { try a.push($0, name: WALName(timeline: 1, segment: UInt64(segment))) }
        }
        _ = try rng.text(444).withUnsafeBytes { try a.storeStreamed($0, segment: WALName(timeline: 1, segment: 8)) }
        let listed = try a.listWithHeaders(threads: 3)
        #expect(
            listed.map(\.name.description) == [
                "000000010000000000000005", "000000010000000000000006", "000000010000000000000007",
                "000000010000000000000008.streaming",
            ])
        #expect(listed.map(\.length) == [3000, 2000, 1000, 444])
        #expect(listed.allSatisfy { abs($0.pushedAt.timeIntervalSinceNow) < 600 })
    }

    @Test func theWindowReachesIntoTheStreamedSegmentAfterTheArchivedRun() throws {
        let t0 = TimeFormat.parse("2026-11-27T10:00:00Z")!
        var wal = (2...4).map { ArchivedWAL(name: WALName(timeline: 1, segment: UInt64($0)), pushedAt: t0.addingTimeInterval(Double($0) * 60)) }
        // A stale part of an archived segment changes nothing; the part after the run does.
        wal.append(ArchivedWAL(name: WALName(timeline: 1, segment: 3, kind: .streaming), pushedAt: t0, length: 100))
        wal.append(ArchivedWAL(name: WALName(timeline: 1, segment: 5, kind: .streaming), pushedAt: t0.addingTimeInterval(321), length: 0x6000))
        let b = try BaseBackupRef(
            id: ObjectID(Array(repeating: 1, count: 32)),
            info: PostgresBackupInfo(
                startLSN: "0/2000028", endLSN: "0/2000100", timeline: 1, endTimeline: 1, systemID: "1",
                startTime: "2026-11-27T10:02:00Z", endTime: "2026-11-27T10:02:10Z",
                startWAL: "000000010000000000000002", endWAL: "000000010000000000000002"))
        let w = RecoveryPlanner.window(backups: [b], wal: wal)
        #expect(w.latestLSN == "0/5006000")
        #expect(w.latestTime == "2026-11-27T10:05:21.000Z")
        #expect(w.streamed == "000000010000000000000005.streaming")
        #expect(w.gaps.isEmpty)
        // Without the streamed part the window ends with the archived run.
        let archivedOnly = RecoveryPlanner.window(backups: [b], wal: Array(wal.prefix(3)))
        #expect(archivedOnly.latestLSN == "0/5000000")
        #expect(archivedOnly.streamed == nil)
    }
}

@Suite struct WALCheckTests {
    func backup(start: UInt64, end: UInt64) throws -> BaseBackupRef {
        let s = WALName(timeline: 1, segment: start), e = WALName(timeline: 1, segment: end)
        return try BaseBackupRef(
            id: ObjectID(Array(repeating: UInt8(start), count: 32)),
            info: PostgresBackupInfo(
                startLSN: LSN.format(s.startLSN + 40), endLSN: LSN.format(e.startLSN + 400), timeline: 1,
                endTimeline: 1, systemID: "1", startTime: "2026-11-27T10:00:00Z",
                endTime: "2026-11-27T10:01:00Z", startWAL: s.description, endWAL: e.description))
    }

    @Test func findsMissingBackupWALGapsAndDamagedObjects() throws {
        let dir = TempDirectory()
        let a = WALArchive(store: try LocalStore(root: dir.url), tenant: "acme", keys: keys, compressionLevel: 3, clock: SystemClock())
        var rng = SeededRandom(seed: 3)
        for n in [2, 3, 5, 6] {
            _ = try rng.text(50_000).withUnsafeBytes { try a.push($0, name: WALName(timeline: 1, segment: UInt64(n))) }
        }
        let check = WALCheck(archive: a)
        let clean = try check.run(backups: [try backup(start: 2, end: 3), try backup(start: 5, end: 6)], readFraction: 1)
        #expect(clean.walFiles == 4 && clean.walFilesRead == 4)
        #expect(
            clean.problems == [
                "wal gap on timeline 1: 000000010000000000000004..000000010000000000000004 missing; points after it are reachable only from later base backups"
            ])

        // A backup whose WAL is not all there, and a damaged object.
        let missing = try check.run(backups: [try backup(start: 5, end: 7)], readFraction: 0)
        #expect(
            missing.problems == ["base backup \(try backup(start: 5, end: 7).id.short) cannot be restored: wal segment 000000010000000000000007 is missing"])
        #expect(missing.walFilesRead == 0)
        let object = dir.sub("tenants/acme/wal/00000001/000000010000000000000003").path
        var bytes = try #require(FileManager.default.contents(atPath: object))
        bytes[bytes.count - 20] ^= 1
        try bytes.write(to: URL(fileURLWithPath: object))
        let damaged = try check.run(backups: [try backup(start: 5, end: 6)], readFraction: 1)
        #expect(damaged.walFilesRead == 3)
        #expect(damaged.problems.count == 1)
        #expect(damaged.problems.first?.hasPrefix("wal object 000000010000000000000003 is damaged") == true, "\(damaged.problems)")
    }
}
