import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorRepository
import TresorStore
import TresorTestSupport

@testable import TresorPostgres

private let keys = TenantKeys(dataKey: Array(repeating: 9, count: 32)).wal

@Suite struct WALNameTests {
    @Test func parsesSegmentsHistoryPartialAndBackupFiles() throws {
        let s = try #require(WALName("00000002000000010000002A"))
        #expect(s.timeline == 2 && s.segment == 256 + 42 && s.kind == .segment)
        #expect(s.description == "00000002000000010000002A")
        #expect(s.next.description == "00000002000000010000002B")
        #expect(WALName("0000000200000001000000FF")!.next.description == "000000020000000200000000")
        #expect(WALName("00000003.history")?.kind == .history)
        #expect(WALName("000000010000000000000003.partial")?.kind == .partial)
        #expect(WALName("000000010000000000000002.00000028.backup")?.kind == .backup("00000028"))
        for bad in ["", "RECOVERYXLOG", "00000001000000000000000g", "000000010000000000000100", "000000000000000000000001", "../00000001.history"] {
            #expect(WALName(bad) == nil, "\(bad)")
        }
    }

    @Test func lsnRoundTripsAndMapsToItsSegment() {
        #expect(LSN.parse("16/B374D848") == 0x16_B374_D848)
        #expect(LSN.format(0x16_B374_D848) == "16/B374D848")
        #expect(WALName.segment(containing: 0x3_0000_0060, timeline: 1).description == "000000010000000300000000")
        #expect(LSN.parse("nope") == nil)
    }
}

@Suite struct WALArchiveTests {
    func archive(_ dir: TempDirectory) throws -> WALArchive {
        WALArchive(store: try LocalStore(root: dir.url), tenant: "acme", keys: keys, compressionLevel: 3, clock: SystemClock())
    }

    func file(_ dir: TempDirectory, _ name: String, seed: UInt64) throws -> String {
        var rng = SeededRandom(seed: seed)
        let path = dir.sub(name).path
        try Data(rng.text(1 << 20) + rng.bytes(64 << 10)).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func aSegmentThatCannotBePrefetchedIsReportedAndNotPlaced() throws {
        let dir = TempDirectory(), spoolDir = TempDirectory()
        var spool = WALSpool(archive: try archive(dir), directory: spoolDir.path)
        let warnings = Locked<[String]>([])
        spool.warn = { line in warnings.withLock { $0.append(line) } }
        let missing = try #require(WALName("000000010000000000000007"))
        #expect(!spool.place(missing, owner: nil))
        #expect(!FileManager.default.fileExists(atPath: spoolDir.path + "/000000010000000000000007"))
        let said = warnings.withLock { $0 }
        #expect(said.count == 1 && said[0].contains("cannot prefetch wal file 000000010000000000000007"), "\(said)")
    }

    @Test func identicalRepushSucceedsAndDifferentContentIsRefused() throws {
        let dir = TempDirectory(), src = TempDirectory()
        let a = try archive(dir)
        let name = "000000010000000000000001"
        let p1 = try file(src, name, seed: 1)
        #expect(try a.push(path: p1) == .stored)
        #expect(try a.push(path: p1) == .alreadyArchived)
        let other = TempDirectory()
        let p2 = try file(other, name, seed: 2)
        let error = #expect(throws: PostgresError.self) { try a.push(path: p2) }
        #expect(error?.code == .conflict)
        #expect(error?.message.contains("different content") == true)
        // The stored object is the first file, byte for byte after opening.
        #expect(try a.fetch(WALName(name)!) == Array(try Data(contentsOf: URL(fileURLWithPath: p1))))
    }

    @Test func storesSealedCompressedObjectsUnderTheTimeline() throws {
        let dir = TempDirectory(), src = TempDirectory()
        let a = try archive(dir)
        let p = try file(src, "00000002.history", seed: 3)
        _ = try a.push(path: p)
        let stored = dir.sub("tenants/acme/wal/00000002/00000002.history").path
        let bytes = try #require(FileManager.default.contents(atPath: stored))
        #expect(bytes.count < 1 << 20, "text-like content is compressed")
        #expect(bytes.prefix(4) == Data("TRSW".utf8))
        let plain = try Data(contentsOf: URL(fileURLWithPath: p))
        #expect(bytes.range(of: plain.prefix(64)) == nil, "the content is not stored in the clear")
    }

    @Test func missingFileIsNotFoundAndATamperedObjectFailsAuthentication() throws {
        let dir = TempDirectory(), src = TempDirectory()
        let a = try archive(dir)
        let missing = #expect(throws: PostgresError.self) { try a.fetch(WALName("000000010000000000000009")!) }
        #expect(missing?.code == .notFound)
        let name = "000000010000000000000002"
        _ = try a.push(path: try file(src, name, seed: 4))
        let stored = dir.sub("tenants/acme/wal/00000001/" + name)
        // Renaming an object into another segment's place is detected (the name is authenticated).
        try FileManager.default.copyItem(at: stored, to: dir.sub("tenants/acme/wal/00000001/000000010000000000000003"))
        #expect(throws: RepositoryError.self) { try a.fetch(WALName("000000010000000000000003")!) }
    }
}

@Suite struct WALObjectFormatTests {
    /// Found by Benchmarks/fuzz.sh (target wal, crash-5fa208b4…): an authenticated object whose
    /// header gives a length beyond Int.max trapped in open() ("not enough bits") instead of
    /// being reported as damage.
    @Test func fuzzFoundWALObjectWithHugeLengthIsDamageNotATrap() throws {
        let name = "00000002.history"
        var header = Array("TRSW".utf8) + [2, BlobCompression.none.rawValue]
        header += withUnsafeBytes(of: UInt64(0x8000_0000_0000_0003).littleEndian, Array.init)
        header += withUnsafeBytes(of: UInt64(1_700_000_000_000).littleEndian, Array.init)
        header += Array(repeating: 0x11, count: 32)
        let gcm = try AESGCM(key: keys.encryption)
        let object = header + gcm.seal(Array("1\t0/3000000\tno recovery target specified\n".utf8), aad: header + Array(name.utf8))
        #expect(throws: RepositoryError.self) { try WALObject.header(object, name: name) }
        #expect(throws: RepositoryError.self) { try WALObject.open(object, name: name, keys: keys) }
    }

    let name = "00000001000000000000000A"

    func pushed(_ plain: [UInt8]) throws -> (archive: WALArchive, object: [UInt8], dir: TempDirectory) {
        let dir = TempDirectory(), src = TempDirectory()
        let a = WALArchive(store: try LocalStore(root: dir.url), tenant: "acme", keys: keys, compressionLevel: 3, clock: SystemClock())
        let path = src.sub(name).path
        try Data(plain).write(to: URL(fileURLWithPath: path))
        #expect(try a.push(path: path) == .stored)
        #expect(try a.push(path: path) == .alreadyArchived)
        let object = try #require(FileManager.default.contents(atPath: dir.sub("tenants/acme/wal/00000001/" + name).path))
        return (a, Array(object), dir)
    }

    @Test func aSegmentIsSealedAsSeveralFramesUnderTheHashOfItsPlaintext() throws {
        var rng = SeededRandom(seed: 7)
        let plain = rng.text(2 * WALObject.frameBytes + 300_000) + rng.bytes(4096)  // three frames
        let (a, object, dir) = try pushed(plain)
        defer { withExtendedLifetime(dir) {} }  // the store lives in it
        #expect(object[4] == 2 && object[5] == BlobCompression.zstd.rawValue)
        #expect(object[6..<14].elementsEqual(withUnsafeBytes(of: UInt64(plain.count).littleEndian) { Array($0) }))
        let mac = plain.withUnsafeBytes { HMACSHA256(key: keys.hash).mac($0) }
        #expect(Array(object[22..<54]) == mac.bytes)
        let payload = try AESGCM(key: keys.encryption).open(Array(object[54...]), aad: Array(object[0..<54]) + Array(name.utf8))
        #expect(payload.count < plain.count / 2)
        // More than one frame: as a single frame it is refused, as frames it is the plaintext.
        #expect(throws: (any Error).self) { try ZstdDecompressor().decompress(payload, rawSize: plain.count) }
        #expect(try a.fetch(WALName(name)!) == plain)
    }

    @Test func objectsOfVersionOneStillOpen() throws {
        var rng = SeededRandom(seed: 8)
        let plain = rng.text(300_000)
        let (a, pushedObject, dir) = try pushed(plain)
        // The documented version 1 layout, built here by hand: one frame.
        var header = Array("TRSW".utf8) + [1, BlobCompression.zstd.rawValue]
        header += withUnsafeBytes(of: UInt64(plain.count).littleEndian) { Array($0) }
        header += Array(pushedObject[14..<22])
        header += plain.withUnsafeBytes { HMACSHA256(key: keys.hash).mac($0) }.bytes
        let frame = try ZstdCompressor(level: 3).compress(plain)
        let v1 = header + (try AESGCM(key: keys.encryption).seal(frame, aad: header + Array(name.utf8)))
        try Data(v1).write(to: dir.sub("tenants/acme/wal/00000001/" + name))
        #expect(try a.fetch(WALName(name)!) == plain)
    }

    @Test func anEmptyFileIsArchivedAndFetchedEmpty() throws {
        let (a, object, dir) = try pushed([])
        defer { withExtendedLifetime(dir) {} }
        #expect(object[5] == BlobCompression.none.rawValue)
        #expect(try a.fetch(WALName(name)!) == [])
    }
}

@Suite struct WALFileReadingTests {
    @Test func mappedAndReadFilesGiveTheFileBytesAndAShortFileIsAnError() throws {
        let dir = TempDirectory()
        var rng = SeededRandom(seed: 9)
        let bytes = rng.bytes(300_001)
        let path = dir.sub("000000010000000000000001").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(try withMappedFile(path) { Array($0) } == bytes)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        #expect(try withReadFile(fd, size: bytes.count, path: path) { Array($0) } == bytes)
        let error = #expect(throws: PostgresError.self) { try withReadFile(fd, size: bytes.count + 1, path: path) { _ in () } }
        #expect(error?.message.contains("cannot read") == true)
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(try withMappedFile(path) { $0.count } == 0)
    }
}

@Suite struct RecoveryPlannerTests {
    func backup(_ end: String, lsn: String, start: String) throws -> BaseBackupRef {
        try BaseBackupRef(
            id: ObjectID(Array(repeating: UInt8(lsn.count), count: 32)),
            info: PostgresBackupInfo(
                startLSN: lsn, endLSN: lsn, timeline: 1, endTimeline: 1, systemID: "1",
                startTime: end, endTime: end, startWAL: start, endWAL: start))
    }

    @Test func refusesTargetsOutsideTheWindowAndPicksTheNewestBackupBefore() throws {
        let t0 = TimeFormat.parse("2026-11-27T10:00:00Z")!
        let wal = (2...6).map { ArchivedWAL(name: WALName(timeline: 1, segment: UInt64($0)), pushedAt: t0.addingTimeInterval(Double($0) * 60)) }
        let b1 = try backup("2026-11-27T10:02:30Z", lsn: "0/2000100", start: "000000010000000000000002")
        let b2 = try backup("2026-11-27T10:04:30Z", lsn: "0/4000100", start: "000000010000000000000004")
        let w = RecoveryPlanner.window(backups: [b1, b2], wal: wal)
        #expect(w.earliestTime == "2026-11-27T10:02:30Z")
        #expect(w.latestLSN == "0/7000000")
        #expect(w.gaps.isEmpty)
        #expect(try RecoveryPlanner.choose(target: .time(t0.addingTimeInterval(200)), backups: [b1, b2], window: w, tenant: "a") == b1)
        #expect(try RecoveryPlanner.choose(target: .time(t0.addingTimeInterval(290)), backups: [b1, b2], window: w, tenant: "a") == b2)
        #expect(try RecoveryPlanner.choose(target: .lsn(0x500_0000), backups: [b1, b2], window: w, tenant: "a") == b2)
        let early = #expect(throws: PostgresError.self) {
            try RecoveryPlanner.choose(target: .time(t0.addingTimeInterval(60)), backups: [b1, b2], window: w, tenant: "a")
        }
        #expect(early?.message.contains("before the end of the oldest base backup") == true)
        #expect(early?.kind == .usage)
        let late = #expect(throws: PostgresError.self) {
            try RecoveryPlanner.choose(target: .lsn(0x900_0000), backups: [b1, b2], window: w, tenant: "a")
        }
        #expect(late?.message.contains("after the latest archived wal") == true)
    }

    @Test func aBaseBackupWithAnUnreadableEndIsRefusedNotRankedNewest() throws {
        // Once an unparseable end time counted as .distantFuture and an unparseable end LSN as
        // .max: the damaged manifest was picked for --latest.
        let badTime = #expect(throws: PostgresError.self) {
            try backup("yesterday", lsn: "0/2000100", start: "000000010000000000000002")
        }
        #expect(badTime?.message.contains("unreadable end time 'yesterday'") == true)
        let badLSN = #expect(throws: PostgresError.self) {
            try backup("2026-11-27T10:02:30Z", lsn: "zero", start: "000000010000000000000002")
        }
        #expect(badLSN?.message.contains("unreadable end lsn 'zero'") == true)
    }

    @Test func reportsGaps() {
        let t0 = Date(timeIntervalSince1970: 0)
        let wal = [1, 2, 5].map { ArchivedWAL(name: WALName(timeline: 1, segment: UInt64($0)), pushedAt: t0) }
        let w = RecoveryPlanner.window(backups: [], wal: wal)
        #expect(w.gaps == ["000000010000000000000003..000000010000000000000004"])
    }

    @Test func recoverySettingsQuoteTheCommandAndPromote() {
        let s = RecoveryPlanner.recoverySettings(
            restoreCommand: "/x/tresor --home '/h' pg wal-fetch a %f %p",
            target: .time(TimeFormat.parse("2026-11-27T10:00:00.25Z")!))
        #expect(s.contains("restore_command = '/x/tresor --home ''/h'' pg wal-fetch a %f %p'"))
        #expect(s.contains("recovery_target_time = '2026-11-27 10:00:00.250000+00'"))
        #expect(s.contains("recovery_target_action = 'promote'"))
    }

    /// A restored server that fsyncs every file before replay (PostgreSQL's default) loses
    /// seconds after a restore that already synced the file system; syncfs only where the
    /// kernel reports its write-back errors.
    @Test func recoverySettingsUseSyncfsOnlyOnKernelsThatReportItsErrors() {
        let target = RecoveryTarget.time(TimeFormat.parse("2026-11-27T10:00:00Z")!)
        let on = RecoveryPlanner.recoverySettings(restoreCommand: "x", target: target, syncfs: true)
        let off = RecoveryPlanner.recoverySettings(restoreCommand: "x", target: target, syncfs: false)
        #expect(on.contains("\nrecovery_init_sync_method = syncfs "))
        #expect(!off.contains("recovery_init_sync_method"))
        #expect(RecoveryPlanner.linuxRelease("6.18.44-fc-v657", atLeast: (5, 8)))
        #expect(RecoveryPlanner.linuxRelease("5.8.0", atLeast: (5, 8)))
        #expect(RecoveryPlanner.linuxRelease("5.10.0-28-amd64", atLeast: (5, 8)))
        #expect(!RecoveryPlanner.linuxRelease("5.7.19", atLeast: (5, 8)))
        #expect(!RecoveryPlanner.linuxRelease("4.19.0-26-amd64", atLeast: (5, 8)))
        #expect(!RecoveryPlanner.linuxRelease("unknown", atLeast: (5, 8)))
    }
}

@Suite struct WALSpoolPrefetchStartTests {
    /// restore_command started a prefetcher after every segment, most of which found the spool
    /// already full and only cost a process that opened the store and listed the archive.
    @Test func aPrefetcherStartsOnlyWhenOneOfTheNextHalfDepthSegmentsIsNotSpooled() throws {
        let spool = TempDirectory()
        let asked = WALName(timeline: 1, segment: 0x10)
        func spoolSegment(_ segment: UInt64) throws {
            try Data([1]).write(to: URL(fileURLWithPath: spool.path + "/" + WALName(timeline: 1, segment: segment).description))
        }
        #expect(WALSpool.needsPrefetch(after: asked, depth: 8, directory: spool.path))  // empty spool
        for s in UInt64(0x11)...0x14 { try spoolSegment(s) }
        #expect(!WALSpool.needsPrefetch(after: asked, depth: 8, directory: spool.path))  // 4 = 8 / 2 ahead
        #expect(WALSpool.needsPrefetch(after: asked, depth: 10, directory: spool.path))  // the fifth is missing
        #expect(WALSpool.needsPrefetch(after: WALName(timeline: 1, segment: 0x11), depth: 8, directory: spool.path))
        #expect(!WALSpool.needsPrefetch(after: asked, depth: 1, directory: spool.path))  // at least one ahead
        #expect(!WALSpool.needsPrefetch(after: asked, depth: 0, directory: spool.path))  // prefetching off
        // Another timeline's segment is not the one replay asks for next.
        #expect(WALSpool.needsPrefetch(after: WALName(timeline: 2, segment: 0x10), depth: 2, directory: spool.path))
        #expect(!WALSpool.needsPrefetch(after: WALName(timeline: 1, segment: 0x10, kind: .partial), depth: 8, directory: spool.path))
    }
}
