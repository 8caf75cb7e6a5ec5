import Foundation
import Testing

@testable import TresorPostgres

/// Builds WAL segments by PostgreSQL 15's page and record layout (as documented in
/// WALRecords/WALCommits, written out here independently): 8 KiB pages, a 40-byte long header on a
/// segment's first page and 24-byte short ones elsewhere, records 8-byte aligned and continued
/// over page boundaries with `XLP_FIRST_IS_CONTRECORD` and `xlp_rem_len`.
struct WALBuilder {
    static let page = 8192
    var bytes: [UInt8]
    let start: UInt64
    var pos = 0
    var prev: UInt64 = 0
    /// Start and end LSN of each record appended.
    var records: [(start: UInt64, end: UInt64)] = []

    init(segment: UInt64) {
        start = segment * WALName.segmentSize
        bytes = [UInt8](repeating: 0, count: Int(WALName.segmentSize))
    }

    mutating func put<T: FixedWidthInteger>(_ v: T, at o: Int) { withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { bytes[o + i] = b } } }

    mutating func pageHeader(rem: Int) {
        let long = pos == 0
        put(UInt16(0xD110), at: pos)
        put(UInt16((long ? 0x2 : 0) | (rem > 0 ? 0x1 : 0)), at: pos + 2)
        put(UInt32(1), at: pos + 4)
        put(start + UInt64(pos), at: pos + 8)
        put(UInt32(rem), at: pos + 16)
        if long {
            put(UInt64(7_000_000_000), at: pos + 24)
            put(UInt32(WALName.segmentSize), at: pos + 32)
            put(UInt32(Self.page), at: pos + 36)
        }
        pos += long ? 40 : 24
    }

    /// Appends one record: `rmid`, `info` and the bytes after the 24-byte header.
    mutating func append(rmid: UInt8, info: UInt8, body: [UInt8]) {
        if pos == 0 { pageHeader(rem: 0) }
        pos = (pos + 7) & ~7
        if pos % Self.page == 0 { pageHeader(rem: 0) }
        var record = [UInt8](repeating: 0, count: 24) + body
        let total = record.count
        withUnsafeBytes(of: UInt32(total).littleEndian) { for (i, b) in $0.enumerated() { record[i] = b } }
        withUnsafeBytes(of: prev.littleEndian) { for (i, b) in $0.enumerated() { record[8 + i] = b } }
        record[16] = info
        record[17] = rmid
        let lsn = start + UInt64(pos)
        var i = 0
        while i < total {
            if pos % Self.page == 0 { pageHeader(rem: total - i) }
            bytes[pos] = record[i]
            pos += 1
            i += 1
        }
        records.append((lsn, start + UInt64(pos)))
        prev = lsn
    }

    /// A commit record (`RM_XACT_ID`, `XLOG_XACT_COMMIT`) at `time`, optionally with an origin.
    mutating func commit(_ time: Date, origin: Bool = false) {
        let micros = Int64(((time.timeIntervalSince1970 - 946_684_800) * 1_000_000).rounded())
        var body: [UInt8] = origin ? [253, 1, 0] : []
        body += [255, 8]
        withUnsafeBytes(of: micros.littleEndian) { body += $0 }
        append(rmid: 1, info: 0x00, body: body)
    }

    /// Another record (`RM_XLOG_ID`) of `size` body bytes.
    mutating func filler(_ size: Int) {
        append(rmid: 0, info: 0x00, body: [255, UInt8(min(size - 2, 255))] + [UInt8](repeating: 0xAB, count: size - 2))
    }
}

@Suite struct WALCommitsTests {
    @Test func theCommitsAroundTheReplayEndAreFoundAcrossPageBoundariesWithTheirTimes() throws {
        var b = WALBuilder(segment: 3)
        let t1 = Date(timeIntervalSince1970: 1_764_500_000.123456)
        let t2 = t1.addingTimeInterval(2.5), t3 = t1.addingTimeInterval(9.000001)
        b.filler(100)
        b.commit(t1)
        b.filler(8000)  // the commit after it straddles the first page boundary
        b.filler(8100 - 1 - 24 - 8)  // more than a page: the next starts near the second boundary
        b.commit(t2, origin: true)
        b.filler(300)
        b.commit(t3)
        let commits = b.records.enumerated().filter { [1, 4, 6].contains($0.offset) }.map(\.element)
        #expect(
            commits[1].start / 8192 != commits[1].end / 8192 || commits[0].end / 8192 != commits[1].start / 8192,
            "the layout must put a page boundary between or inside the commits")
        let segment = b.bytes
        let fetch: (WALName) throws -> [UInt8]? = { $0.segment == 3 ? segment : nil }

        // Replay ended right after the second commit: it is the last replayed, the third is next.
        let a = try WALCommits.around(commits[1].end, timeline: 1, fetch: fetch)
        #expect(a.replayed?.lsn == commits[1].start && a.next?.lsn == commits[2].start)
        #expect(abs((a.replayed?.time ?? .distantPast).timeIntervalSince(t2)) < 0.000_001)
        #expect(abs((a.next?.time ?? .distantPast).timeIntervalSince(t3)) < 0.000_001)
        // Replay ended before the second commit: the first is the last replayed, the second next.
        let c = try WALCommits.around(commits[1].start, timeline: 1, fetch: fetch)
        #expect(c.replayed?.lsn == commits[0].start && c.next?.lsn == commits[1].start)
        #expect(abs((c.replayed?.time ?? .distantPast).timeIntervalSince(t1)) < 0.000_001)
        // After the last commit the archive holds none: no next commit, never a made-up one.
        let d = try WALCommits.around(commits[2].end, timeline: 1, fetch: fetch)
        #expect(d.replayed?.lsn == commits[2].start && d.next == nil)
    }
}
