import Foundation
import TresorCore

/// Just enough of PostgreSQL's WAL page and record layout to find where records start: what a
/// `recovery_target_lsn` must name (PostgreSQL stops after the first record that starts at or
/// after the target; a target past the last record's start is never reached and ends recovery
/// with a FATAL error).
///
/// Layout (PostgreSQL 15, `access/xlog_internal.h`, `access/xlogrecord.h`): 8 KiB pages, each
/// starting with a 24-byte header (the first page of a segment: 40 bytes) holding `xlp_magic`
/// (u16), `xlp_info` (u16; 0x1 = the page starts with the rest of a record, 0x2 = long header),
/// `xlp_tli` (u32), `xlp_pageaddr` (u64, the page's LSN), `xlp_rem_len` (u32, bytes of that rest);
/// the long header adds `xlp_sysid` (u64 at offset 24), `xlp_seg_size` (u32 at 32) and
/// `xlp_xlog_blcksz` (u32 at 36). Records are 8-byte aligned and start
/// with `xl_tot_len` (u32), `xl_xid` (u32), `xl_prev` (u64), `xl_info` (u8), `xl_rmid` (u8); a
/// record may continue over page and segment boundaries. An `XLOG_SWITCH` record (rmid 0, info
/// 0x40) ends the segment's WAL.
public enum WALRecords {
    static let pageSize = 8192
    static let shortHeader = 24
    static let longHeader = 40

    /// The system identifier in a segment's first page header, or nil when `segment` does not
    /// start with a long page header (the long-header flag, a 16 MiB segment size and 8 KiB pages
    /// at their places; `xlp_magic` changes with every major version, so it is not compared).
    public static func systemIdentifier(_ segment: UnsafeRawBufferPointer) -> UInt64? {
        guard segment.count >= longHeader, u16(segment, 2) & 0x2 != 0,
              u32(segment, 32) == UInt32(WALName.segmentSize), u32(segment, 36) == UInt32(pageSize) else { return nil }
        return u64(segment, 24)
    }

    /// The LSN of the last record that starts and ends inside the first `length` bytes of
    /// `segment` (which begins at LSN `start`), walking the records from the first one that
    /// starts in it and checking each page's address and each record's back link; nil when no
    /// whole record starts in it.
    public static func lastRecordStart(_ segment: [UInt8], start: UInt64, length: Int) -> UInt64? {
        segment.withUnsafeBytes { buf -> UInt64? in
            let n = min(length, buf.count)
            func pageOK(_ off: Int) -> Bool {
                off + shortHeader <= n && u64(buf, off + 8) == start + UInt64(off)
            }
            // The first record start: past the page header and the rest of a record that began
            // in an earlier page.
            var p = -1
            var off = 0
            while off < n && pageOK(off) {
                let header = off == 0 ? longHeader : shortHeader
                let rest = u16(buf, off + 2) & 0x1 != 0 ? Int(u32(buf, off + 16)) : 0
                if header + align8(rest) < pageSize {
                    p = off + header + align8(rest)
                    break
                }
                off += pageSize
            }
            guard p >= 0 else { return nil }
            var last: UInt64? = nil
            var previous: UInt64? = nil
            while p + 24 <= n {
                let total = Int(u32(buf, p))
                guard total >= 24 else { break }
                let lsn = start + UInt64(p)
                if let previous, u64(buf, p + 8) != previous { break }
                let info = buf[p + 16], rmid = buf[p + 17]
                // Where the record ends, over page headers.
                var q = p, remaining = total, whole = true
                while remaining > 0 {
                    let pageEnd = (q / pageSize + 1) * pageSize
                    let take = min(remaining, pageEnd - q)
                    q += take
                    remaining -= take
                    if remaining > 0 {
                        guard pageEnd < n, pageOK(pageEnd) else {
                            whole = false
                            break
                        }
                        q = pageEnd + shortHeader
                    }
                }
                guard whole, q <= n else { break }
                last = lsn
                previous = lsn
                if rmid == 0 && info & 0xF0 == 0x40 { break }   // XLOG_SWITCH
                p = align8(q)
                if p % pageSize == 0 {
                    guard p < n, pageOK(p) else { break }
                    p += shortHeader
                }
            }
            return last
        }
    }

    static func align8(_ v: Int) -> Int { (v + 7) & ~7 }
    static func u16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func u32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[o + $1]) << (8 * $1) }
    }
    static func u64(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[o + $1]) << (8 * $1) }
    }
}
