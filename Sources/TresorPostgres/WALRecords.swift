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
            u32(segment, 32) == UInt32(WALName.segmentSize), u32(segment, 36) == UInt32(pageSize)
        else { return nil }
        return u64(segment, 24)
    }

    /// The LSN of the last record that starts and ends inside the first `length` bytes of
    /// `segment` (which begins at LSN `start`), walking the records from the first one that
    /// starts in it and checking each page's address and each record's back link; nil when no
    /// whole record starts in it, or when the walk meets bytes that are neither a record nor
    /// the zeros after the end of the WAL (never a target short of the real end).
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
            // The walk stopped at `p` on something that is not a record: the end of the WAL when
            // only zeros follow; otherwise this walker does not understand the segment, and a
            // target it found could be short of the real end, so it finds none.
            func endOfWAL(_ p: Int) -> UInt64? {
                (p..<n).allSatisfy { buf[$0] == 0 } ? last : nil
            }
            var previous: UInt64? = nil
            // Byte `i` of the record starting at `p`: its 24-byte header may continue on the next
            // page, after that page's header (`xl_tot_len` itself never does: records are 8-byte
            // aligned).
            func headerByte(_ p: Int, _ i: Int) -> UInt8? {
                let room = (p / pageSize + 1) * pageSize - p
                let q = i < room ? p + i : p + room + shortHeader + (i - room)
                return q < n ? buf[q] : nil
            }
            while p + 4 <= n {
                let total = Int(u32(buf, p))
                guard total >= 24 else { return endOfWAL(p) }
                let lsn = start + UInt64(p)
                var header = (prev: UInt64(0), info: UInt8(0), rmid: UInt8(0))
                if p % pageSize + 24 <= pageSize && p + 24 <= n {
                    header = (u64(buf, p + 8), buf[p + 16], buf[p + 17])
                } else {
                    var bytes = (UInt64(0), UInt8(0), UInt8(0)), whole = true
                    for i in 8..<18 {
                        guard let b = headerByte(p, i) else {
                            whole = false
                            break
                        }
                        if i < 16 { bytes.0 |= UInt64(b) << (8 * UInt64(i - 8)) } else if i == 16 { bytes.1 = b } else { bytes.2 = b }
                    }
                    guard whole else { return last }  // the header continues past the data
                    header = bytes
                }
                if let previous, header.prev != previous { return endOfWAL(p) }
                // Where the record ends, over page headers.
                var q = p, remaining = total, whole = true
                while remaining > 0 {
                    let pageEnd = (q / pageSize + 1) * pageSize
                    let take = min(remaining, pageEnd - q)
                    q += take
                    remaining -= take
                    if remaining > 0 {
                        guard pageEnd < n else {
                            whole = false
                            break
                        }
                        guard pageOK(pageEnd) else { return endOfWAL(p) }
                        q = pageEnd + shortHeader
                    }
                }
                guard whole, q <= n else { return last }  // continues past the data
                last = lsn
                previous = lsn
                if header.rmid == 0 && header.info & 0xF0 == 0x40 { return last }  // XLOG_SWITCH
                p = align8(q)
                if p % pageSize == 0 {
                    guard p < n else { return last }
                    guard pageOK(p) else { return endOfWAL(p) }
                    p += shortHeader
                }
            }
            return last
        }
    }

    static func align8(_ v: Int) -> Int { (v + 7) & ~7 }
    static func u16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { b.loadUnaligned(fromByteOffset: o, as: UInt16.self).littleEndian }
    static func u32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 { b.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian }
    static func u64(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 { b.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian }
}
