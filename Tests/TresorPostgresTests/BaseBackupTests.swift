import Testing
import TresorRepository

@testable import TresorPostgres

@Suite struct BaseBackupTests {
    @Test func relationFilesAreThoseUnderBaseAndGlobalWithNumericNames() {
        for p in ["base/1/1259", "base/16384/16397.1", "base/5/2619_fsm", "base/5/2619_vm", "global/1262"] {
            #expect(BaseBackup.isRelationFile(p), "\(p)")
        }
        for p in [
            "base/1/PG_VERSION", "base/1/pg_internal.init", "global/pg_control", "pg_xact/0000",
            "postgresql.conf", "backup_label", "base/1", "pg_tblspc/16400",
        ] {
            #expect(!BaseBackup.isRelationFile(p), "\(p)")
        }
    }

    /// A page as PostgreSQL lays it out: pd_lsn (8), pd_checksum, pd_flags, pd_lower, pd_upper,
    /// pd_special, pd_pagesize_version (2 bytes each, little-endian), then 8 KiB in all.
    func page(special: UInt16, sizeVersion: UInt16 = 8192 | 4) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 8192)
        for (offset, value) in [(12, UInt16(40)), (14, UInt16(7000)), (16, special), (18, sizeVersion)] {
            p[offset] = UInt8(value & 0xff)
            p[offset + 1] = UInt8(value >> 8)
        }
        return p
    }

    @Test func indexPagesAreThoseWithASpecialSpace() {
        let btree = page(special: 8192 - 16), gin = page(special: 8192 - 8)
        let heap = page(special: 8192), empty = [UInt8](repeating: 0, count: 8192)
        let otherVersion = page(special: 8176, sizeVersion: 8192 | 3), bigger = page(special: 8176, sizeVersion: 16384 | 4)
        func index(_ pages: [UInt8]...) -> Bool { pages.flatMap { $0 }.withUnsafeBytes { BaseBackup.startsWithIndexPage($0) } }
        #expect(index(btree))
        #expect(index(gin, heap))
        #expect(!index(heap, btree))  // the first page decides
        #expect(!index(empty))  // a page not yet initialised
        #expect(!index(otherVersion))
        #expect(!index(bigger))
        #expect(!index(Array(btree.prefix(4096))))  // shorter than a page
    }

    @Test func heapChunksGetTheHeapLevelAndIndexChunksTheTunedIndexLevel() throws {
        let btree = page(special: 8192 - 16), heap = page(special: 8192)
        func setting(_ chunk: [UInt8], index: Int?, heap: Int?) throws -> ZstdSetting? {
            let choose = try #require(BaseBackup.relationCompression(index: index, heap: heap))
            return chunk.withUnsafeBytes { choose($0) }
        }
        #expect(try setting(heap + btree, index: 6, heap: 1) == ZstdSetting(level: 1))
        #expect(try setting(btree + heap, index: 6, heap: 1) == ZstdSetting(level: 6, indexPages: true))
        // A level not given leaves that kind of chunk at the policy's level (nil).
        #expect(try setting(heap, index: 6, heap: nil) == nil)
        #expect(try setting(btree, index: nil, heap: 1) == nil)
        #expect(BaseBackup.relationCompression(index: nil, heap: nil) == nil)
    }
}

@Suite struct BaseBackupWALWaitTests {
    @Test func missingSegmentsAreThoseOnNeitherTimeline() {
        let from = WALName(timeline: 1, segment: 0x10), to = WALName(timeline: 2, segment: 0x13)
        let archived: Set<WALName> = [
            WALName(timeline: 1, segment: 0x10), WALName(timeline: 2, segment: 0x12),
            WALName(timeline: 3, segment: 0x11), WALName(timeline: 1, segment: 0x13, kind: .partial),
        ]
        #expect(
            BaseBackup.missingSegments(from: from, to: to, archived: archived)
                == [WALName(timeline: 1, segment: 0x11), WALName(timeline: 1, segment: 0x13)])
        let all: Set<WALName> = [
            WALName(timeline: 1, segment: 0x10), WALName(timeline: 1, segment: 0x11),
            WALName(timeline: 2, segment: 0x12), WALName(timeline: 2, segment: 0x13),
        ]
        #expect(BaseBackup.missingSegments(from: from, to: to, archived: all).isEmpty)
        let one = WALName(timeline: 1, segment: 7)
        #expect(BaseBackup.missingSegments(from: one, to: one, archived: []) == [one])
    }

    @Test func pollsStartShortAndBackOffToHalfASecond() {
        #expect(abs(BaseBackup.nextPollDelay(after: 0.02) - 0.03) < 1e-12)
        #expect(abs(BaseBackup.nextPollDelay(after: 0.3) - 0.45) < 1e-12)
        #expect(BaseBackup.nextPollDelay(after: 0.4) == 0.5)
        #expect(BaseBackup.nextPollDelay(after: 0.5) == 0.5)
    }
}
