import Foundation

/// Commit times read from archived WAL, to prove where a point-in-time recovery stopped with data
/// rather than with the server's word.
///
/// Records are walked as ``WALRecords`` describes (page headers skipped: 40 bytes at a segment's
/// start, 24 elsewhere, each page's `xlp_pageaddr` checked; each record's `xl_prev` checked
/// against the record before). A transaction commit is a record of resource manager 1
/// (`RM_XACT_ID`) whose `xl_info & 0x70` is 0x00 (`XLOG_XACT_COMMIT`) or 0x30
/// (`XLOG_XACT_COMMIT_PREPARED`); its main data (`xl_xact_commit`) starts with `xact_time`, an
/// int64 of microseconds since 2000-01-01 00:00 UTC. The main data is the record's last bytes; its
/// length follows the block id 255 (one byte) or 254 (four bytes) after the 24-byte header, past
/// the optional origin (253, two bytes) and top-level xid (252, four bytes). A commit record with
/// block references (never written by PostgreSQL 15) is not understood and ends the walk.
public enum WALCommits {
    /// The last commit that recovery replayed and the first commit after it.
    public struct Around: Sendable, Equatable {
        /// The last commit record that starts before `replayEnd`, and its time.
        public var replayed: (lsn: UInt64, time: Date)?
        /// The first commit record that starts at or after `replayEnd`, and its time.
        public var next: (lsn: UInt64, time: Date)?

        public static func == (a: Around, b: Around) -> Bool {
            a.replayed?.lsn == b.replayed?.lsn && a.replayed?.time == b.replayed?.time
                && a.next?.lsn == b.next?.lsn && a.next?.time == b.next?.time
        }
    }

    /// PostgreSQL's epoch for timestamps.
    static let postgresEpoch = Date(timeIntervalSince1970: 946_684_800)

    /// The commits around `replayEnd` (the end of the last replayed record, as
    /// `pg_last_wal_replay_lsn()` reports it) on `timeline`. Looks back at most `segmentsBack`
    /// segments for the replayed one and forward at most `segmentsAhead` for the next; `fetch`
    /// returns a whole segment, or nil when it is not archived (the walk ends there).
    public static func around(
        _ replayEnd: UInt64, timeline: UInt32, segmentsBack: Int = 64, segmentsAhead: Int = 64,
        fetch: @escaping (WALName) throws -> [UInt8]?
    ) throws -> Around {
        var reader = Reader(timeline: timeline, fetch: fetch)
        var result = Around()
        let endSegment = max(replayEnd, 1) - 1
        var segno = endSegment / WALName.segmentSize
        // The last replayed commit: walk a segment's records up to replayEnd; if it holds none,
        // start one segment earlier.
        while result.replayed == nil && endSegment / WALName.segmentSize - segno < UInt64(segmentsBack) {
            guard var p = try reader.firstRecord(inSegment: segno) else { break }
            var prev: UInt64? = nil
            while p < replayEnd, let r = try reader.record(at: p, prev: prev) {
                if let t = r.commitTime { result.replayed = (p, t) }
                prev = p
                p = r.next
            }
            guard segno > 0 else { break }
            segno -= 1
        }
        // The next commit: from the first record at or after replayEnd.
        var p = try reader.firstRecord(inSegment: endSegment / WALName.segmentSize)
        var prev: UInt64? = nil
        while let q = p, q < replayEnd, let r = try reader.record(at: q, prev: prev) {
            prev = q
            p = r.next
        }
        let limit = (endSegment / WALName.segmentSize + UInt64(segmentsAhead)) * WALName.segmentSize
        while let q = p, q < limit, let r = try reader.record(at: q, prev: prev) {
            if let t = r.commitTime {
                result.next = (q, t)
                break
            }
            prev = q
            p = r.next
        }
        return result
    }

    struct Record {
        var rmid: UInt8
        var info: UInt8
        var bytes: [UInt8]
        /// Where the next record starts (past alignment and a page header).
        var next: UInt64

        var commitTime: Date? {
            guard rmid == 1, info & 0x70 == 0x00 || info & 0x70 == 0x30 else { return nil }
            var i = 24
            var mainLength: Int? = nil
            while i < bytes.count, mainLength == nil {
                switch bytes[i] {
                case 255:
                    guard i + 1 < bytes.count else { return nil }
                    mainLength = Int(bytes[i + 1])
                case 254:
                    guard i + 4 < bytes.count else { return nil }
                    mainLength = Int(WALCommits.u32(bytes, i + 1))
                case 253: i += 3
                case 252: i += 5
                default: return nil  // a block reference: not a commit record this reader knows
                }
            }
            guard let n = mainLength, n >= 8, n <= bytes.count - 24 else { return nil }
            let micros = Int64(bitPattern: WALCommits.u64(bytes, bytes.count - n))
            return WALCommits.postgresEpoch.addingTimeInterval(Double(micros) / 1_000_000)
        }
    }

    struct Reader {
        let timeline: UInt32
        let fetch: (WALName) throws -> [UInt8]?
        var cached: (segno: UInt64, bytes: [UInt8]?)?

        static let page = UInt64(WALRecords.pageSize)

        mutating func segment(_ segno: UInt64) throws -> [UInt8]? {
            if let c = cached, c.segno == segno { return c.bytes }
            let bytes = try fetch(WALName(timeline: timeline, segment: segno))
            cached = (segno, bytes)
            return bytes
        }

        static func headerSize(_ pageStart: UInt64) -> UInt64 {
            pageStart % WALName.segmentSize == 0 ? UInt64(WALRecords.longHeader) : UInt64(WALRecords.shortHeader)
        }

        /// The page at `pageStart`, when it is archived and its header names that address.
        mutating func pageOK(_ pageStart: UInt64) throws -> [UInt8]? {
            guard let seg = try segment(pageStart / WALName.segmentSize) else { return nil }
            let off = Int(pageStart % WALName.segmentSize)
            guard off + WALRecords.shortHeader <= seg.count, WALCommits.u64(seg, off + 8) == pageStart else { return nil }
            return seg
        }

        /// `count` bytes of WAL data from `lsn`, page headers skipped; nil past the archive's end.
        mutating func read(_ lsn: UInt64, _ count: Int) throws -> (bytes: [UInt8], end: UInt64)? {
            var out: [UInt8] = []
            out.reserveCapacity(count)
            var p = lsn
            while out.count < count {
                let pageStart = p - p % Self.page
                if p == pageStart { p += Self.headerSize(pageStart) }
                guard let seg = try pageOK(pageStart) else { return nil }
                let off = Int(p % WALName.segmentSize)
                let take = min(count - out.count, Int(pageStart + Self.page - p))
                guard off + take <= seg.count else { return nil }
                out += seg[off..<(off + take)]
                p += UInt64(take)
            }
            return (out, p)
        }

        /// The record starting at `lsn`, or nil at the end of the WAL (zeros, a broken back link,
        /// a page that is not there).
        mutating func record(at lsn: UInt64, prev: UInt64?) throws -> Record? {
            guard let head = try read(lsn, 24) else { return nil }
            let total = Int(WALCommits.u32(head.bytes, 0))
            guard total >= 24, total < 1 << 30 else { return nil }
            if let prev, WALCommits.u64(head.bytes, 8) != prev { return nil }
            guard let whole = try read(lsn, total) else { return nil }
            var next = (whole.end + 7) & ~7
            if next % Self.page == 0 { next += Self.headerSize(next) }
            return Record(rmid: head.bytes[17], info: head.bytes[16], bytes: whole.bytes, next: next)
        }

        /// The first record that starts in the segment: past its first page's header and the
        /// rest of a record that began in the segment before (which may fill whole pages).
        mutating func firstRecord(inSegment segno: UInt64) throws -> UInt64? {
            let start = segno * WALName.segmentSize
            var pageStart = start
            while pageStart < start + WALName.segmentSize {
                guard let seg = try pageOK(pageStart) else { return nil }
                let off = Int(pageStart - start)
                let header = Self.headerSize(pageStart)
                let rest = WALCommits.u16(seg, off + 2) & 0x1 != 0 ? UInt64(WALCommits.u32(seg, off + 16)) : 0
                let p = pageStart + header + ((rest + 7) & ~7)
                if p < pageStart + Self.page { return p }
                pageStart += Self.page
            }
            return nil
        }
    }

    static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
    static func u64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
}
