import Foundation
import Testing

@testable import TresorCore

@Suite struct TOMLTests {
    @Test func parsesTablesScalarsAndArrays() throws {
        let doc = try TOML.parse(
            """
            # comment
            top = "a # not a comment"
            [backup]
            level = 3
            big = 16_777_216
            ratio = 0.5
            on = true
            names = ["a", 'b', 3]
            [drills.monthly]
            max_age = "30d" # trailing comment
            """)
        #expect(doc["top"] == .string("a # not a comment"))
        #expect(doc.value(at: "backup.level") == .integer(3))
        #expect(doc.value(at: "backup.big") == .integer(16_777_216))
        #expect(doc.value(at: "backup.ratio") == .float(0.5))
        #expect(doc.value(at: "backup.on") == .bool(true))
        #expect(doc.value(at: "backup.names") == .array([.string("a"), .string("b"), .integer(3)]))
        #expect(doc.value(at: "drills.monthly.max_age") == .string("30d"))
    }

    @Test func rejectsWhatItDoesNotUnderstandWithALineNumber() {
        for (text, line) in [("a = 1\nb = bare", 2), ("[x\n", 1), ("a = 1\na = 2", 2), ("x = \"open", 1)] {
            do {
                _ = try TOML.parse(text, source: "f.toml")
                Issue.record("accepted \(text)")
            } catch let e as TOML.ParseError {
                #expect(e.message.hasPrefix("f.toml:\(line):"), "\(e.message)")
                #expect(e.kind == .usage)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }
}

@Suite struct TOMLLibraryTests {
    @Test func crlfLineEndsAreAccepted() throws {
        // The hand-written parser kept the \r in every value and refused "3\r" as a number.
        let doc = try TOML.parse("[backup]\r\ncompression_level = 3\r\nname = \"x\"\r\n", source: "crlf.toml")
        #expect(doc.value(at: "backup.compression_level") == .integer(3))
        #expect(doc.value(at: "backup.name") == .string("x"))
    }

    @Test func validTOMLTheOldParserRefusedIsRead() throws {
        let doc = try TOML.parse(
            #"""
            a.b = 0x10
            "quoted key" = 'lit'
            inline = { x = 1, y = "two" }
            multi = [
              1,
              2,  # comment
            ]
            text = """
            two
            lines"""
            [[jobs]]
            name = "first"
            [[jobs]]
            name = "second"
            """#)
        #expect(doc.value(at: "a.b") == .integer(16))
        #expect(doc["quoted key"] == .string("lit"))
        #expect(doc.value(at: "inline.y") == .string("two"))
        #expect(doc["multi"] == .array([.integer(1), .integer(2)]))
        #expect(doc["text"] == .string("two\nlines"))
        #expect(doc["jobs"] == .array([.table(["name": .string("first")]), .table(["name": .string("second")])]))
    }

    @Test func keyLinesPointAtTheLineThatSetsTheKey() throws {
        let text = "# top\r\n[backup]\r\nlevel = 3\r\ntext = '''\r\nx = 1\r\n'''\r\n[postgres]\r\nx = 2\r\nsub.key = 'a = b'\r\n"
        let doc = try TOML.document(text, source: "f.toml")
        #expect(doc.line(of: "backup") == 2)
        #expect(doc.line(of: "backup.level") == 3)
        #expect(doc.line(of: "postgres.x") == 8)
        #expect(doc.line(of: "postgres.sub.key") == 9)
        #expect(doc.location(of: "postgres.nothing") == "f.toml:7")
    }

    @Test func aNulByteIsRefusedNotTruncated() {
        let error = #expect(throws: TOML.ParseError.self) { try TOML.parse("a = 1\nb = \"x\u{0}y\"\n", source: "n.toml") }
        #expect(error?.message.hasPrefix("n.toml:2:") == true)
    }
}

@Suite struct PolicySchemaTests {
    static let defaultText = try! String(contentsOf: PolicyTests.sourcePolicies.appendingPathComponent("default.toml"), encoding: .utf8)

    /// Loads the shipped default with `edit` applied (plus `extra` as a later file) from a
    /// directory and returns the error, with the directory taken out of its message.
    private func loadError(_ edit: (String) -> String, extra: String? = nil) throws -> CoreError? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try edit(Self.defaultText).write(to: dir.appendingPathComponent("default.toml"), atomically: true, encoding: .utf8)
        if let extra { try extra.write(to: dir.appendingPathComponent("zz.toml"), atomically: true, encoding: .utf8) }
        do {
            _ = try Policy.load(directory: dir)
            return nil
        } catch let e as CoreError {
            #expect(e.kind == .usage)
            return CoreError(e.kind, e.message.replacingOccurrences(of: dir.path + "/", with: ""), hint: e.hint)
        }
    }

    /// The 1-based line of the shipped default that starts with `prefix`.
    private func line(of prefix: String) -> Int {
        let lines = Self.defaultText.components(separatedBy: "\n")
        return (lines.firstIndex { $0.hasPrefix(prefix) } ?? -1) + 1
    }

    @Test func aMisspeltKeyIsOneErrorNamingFileLineAndKey() throws {
        let e = try loadError { $0.replacingOccurrences(of: "changed_file_retries = 2", with: "changed_file_retry = 2") }
        #expect(e?.message == "default.toml:\(line(of: "changed_file_retries")): backup.changed_file_retry: unknown key")
        #expect(e?.hint?.contains("changed_file_retries") == true)
    }

    @Test func anUnknownKeyInALaterFileNamesThatFile() throws {
        let e = try loadError({ $0 }, extra: "# local\n[drills]\nmax_age = \"30d\"\nmaxage = \"20d\"\n")
        #expect(e?.message == "zz.toml:4: drills.maxage: unknown key")
        let table = try loadError({ $0 }, extra: "[drill]\ninterval = \"1d\"\n")
        #expect(table?.message == "zz.toml:1: drill: unknown table")
    }

    @Test func aWrongTypeNamesWhatWasExpected() throws {
        let e = try loadError { $0.replacingOccurrences(of: "compression_level = 3", with: "compression_level = \"3\"") }
        #expect(e?.message == "default.toml:\(line(of: "compression_level")): backup.compression_level: must be a whole number in 1...19, not a string")
        let d = try loadError { $0.replacingOccurrences(of: "max_age = \"30d\"", with: "max_age = 30") }
        #expect(d?.message.hasPrefix("default.toml:\(line(of: "max_age")): drills.max_age: must be a duration") == true)
    }

    @Test func impossibleValuesAreRefusedWithTheirLine() throws {
        let e = try loadError { $0.replacingOccurrences(of: "daily_snapshots_kept = 31", with: "daily_snapshots_kept = 30") }
        #expect(
            e?.message
                == "default.toml:\(line(of: "daily_snapshots_kept")): documents.daily_snapshots_kept: 30 is out of range: must be a whole number in 31...100000"
        )
        let late = try loadError({ $0 }, extra: "[deletion]\ndelay_after_contract_end = \"91d\"\n")
        #expect(late?.message.hasPrefix("zz.toml:2: deletion.delay_after_contract_end: 91d is out of range") == true)
        let bad = try loadError { $0.replacingOccurrences(of: "link_lifetime = \"7d\"", with: "link_lifetime = \"7 days\"") }
        #expect(bad?.message.hasPrefix("default.toml:\(line(of: "link_lifetime")): exports.link_lifetime: '7 days' is not a duration") == true)
        // A rule between two keys names the file and line of the key it blames.
        let drills = try loadError({ $0 }, extra: "[drills]\ninterval = \"60d\"\nmax_age = \"30d\"\n")
        #expect(drills?.message.hasPrefix("zz.toml:2: drills.interval: must not be longer than drills.max_age") == true)
    }

    @Test func aHomeMadeBeforeTheNewFiguresStillLoadsWithTheShippedOnes() throws {
        // The policy files `tresor init` copied before this change: no [drills], [deletion],
        // [exports], [access_log] and none of the new keys.
        var old = Self.defaultText
        for key in [
            "daily_snapshots_kept", "recovery_window", "base_backup_interval", "interval", "max_age",
            "delay_after_contract_end", "sweep_interval", "link_lifetime", "retention", "index_compression_level",
        ] {
            old = old.components(separatedBy: "\n").filter { !$0.hasPrefix(key + " ") }.joined(separator: "\n")
        }
        for table in ["[drills]", "[deletion]", "[exports]", "[access_log]"] {
            old = old.replacingOccurrences(of: table, with: "")
        }
        let fromOld = try Policy(toml: try TOML.parse(old), source: "old")
        let shipped = try Policy.load(directory: PolicyTests.sourcePolicies)
        #expect(fromOld == shipped)
        // The fallbacks are the shipped file's values, key by key.
        let shippedDoc = try TOML.parse(Self.defaultText)
        for (key, value) in Policy.figuresOlderHomesLack {
            #expect(shippedDoc.value(at: key) == value, "\(key)")
        }
    }

    @Test func crlfPolicyFilesLoad() throws {
        #expect(try loadError { $0.replacingOccurrences(of: "\n", with: "\r\n") } == nil)
    }

    @Test func shippedDefaultsCarryTheServiceTermsFigures() throws {
        let p = try Policy.load(directory: PolicyTests.sourcePolicies)
        let day = 86400.0
        #expect(p.postgres.recoveryWindow.seconds == 30 * day)
        #expect(p.postgres.baseBackupInterval.seconds == day)
        #expect(p.documents.dailySnapshotsKept == 31)
        #expect(p.drills.maxAge.seconds == 30 * day)
        #expect(p.drills.interval.seconds == 7 * day)
        #expect(p.deletion.delayAfterContractEnd.seconds == 90 * day)
        #expect(p.deletion.sweepInterval.seconds == 7 * day)
        #expect(p.exports.linkLifetime.seconds == 7 * day)
        #expect(p.exports.downloadStallTimeout.seconds == 60)
        #expect(p.accessLog.retention.seconds == 183 * day)
    }

    /// A zone name the system does not know would otherwise fall back to some default zone and
    /// move every day boundary retention draws.
    @Test func anUnknownRetentionTimeZoneIsAnErrorNamingFileLineAndKey() throws {
        let e = try loadError { $0.replacingOccurrences(of: "timezone = \"UTC\"", with: "timezone = \"Europe/Atlantis\"") }
        #expect(e?.message == "default.toml:\(line(of: "timezone")): retention.timezone: Europe/Atlantis is not a time zone name", "\(String(describing: e))")
        #expect(try loadError { $0.replacingOccurrences(of: "timezone = \"UTC\"", with: "timezone = \"Europe/Berlin\"") } == nil)
    }
}

@Suite struct PolicyTests {
    static let sourcePolicies = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../policies").standardizedFileURL

    @Test func shippedDefaultPolicyLoads() throws {
        let p = try Policy.load(directory: Self.sourcePolicies)
        #expect(p.backup.compressionLevel == 3)
        #expect(p.backup.chunkAvg == 1 << 20)
        #expect(p.backup.packTarget == 16 << 20)
        #expect(p.documents.backupInterval == PolicyDuration(seconds: 86400))
    }

    @Test func laterFilesOverrideAndMissingKeysAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(
            at: Self.sourcePolicies.appendingPathComponent("default.toml"),
            to: dir.appendingPathComponent("default.toml"))
        try "[backup]\ncompression_level = 9\n".write(to: dir.appendingPathComponent("zz-local.toml"), atomically: true, encoding: .utf8)
        #expect(try Policy.load(directory: dir).backup.compressionLevel == 9)

        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID())")
        try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: broken) }
        try "[backup]\ncompression_level = 3\n".write(to: broken.appendingPathComponent("a.toml"), atomically: true, encoding: .utf8)
        let error = #expect(throws: CoreError.self) { try Policy.load(directory: broken) }
        #expect(error?.message.contains("backup.chunk_min_bytes") == true)
    }

    @Test func indexCompressionLevelIsReadAndDefaultsWhenAbsent() throws {
        let text = try String(contentsOf: Self.sourcePolicies.appendingPathComponent("default.toml"), encoding: .utf8)
        #expect(text.contains("index_compression_level = 6"))
        let older = text.replacingOccurrences(of: "index_compression_level = 6", with: "")
        #expect(try Policy(toml: try TOML.parse(older), source: "t").postgres.indexCompressionLevel == 6)
        let nine = text.replacingOccurrences(of: "index_compression_level = 6", with: "index_compression_level = 9")
        #expect(try Policy(toml: try TOML.parse(nine), source: "t").postgres.indexCompressionLevel == 9)
        let bad = text.replacingOccurrences(of: "index_compression_level = 6", with: "index_compression_level = 0")
        #expect(throws: CoreError.self) { try Policy(toml: try TOML.parse(bad), source: "t") }
    }

    @Test func heapCompressionLevelIsReadAndDefaultsToOneWhenAbsent() throws {
        let text = try String(contentsOf: Self.sourcePolicies.appendingPathComponent("default.toml"), encoding: .utf8)
        #expect(text.contains("heap_compression_level = 1"))
        let older = text.replacingOccurrences(of: "heap_compression_level = 1", with: "")
        #expect(try Policy(toml: try TOML.parse(older), source: "t").postgres.heapCompressionLevel == 1)
        let three = text.replacingOccurrences(of: "heap_compression_level = 1", with: "heap_compression_level = 3")
        #expect(try Policy(toml: try TOML.parse(three), source: "t").postgres.heapCompressionLevel == 3)
        let bad = text.replacingOccurrences(of: "heap_compression_level = 1", with: "heap_compression_level = 20")
        #expect(throws: CoreError.self) { try Policy(toml: try TOML.parse(bad), source: "t") }
    }

    @Test func rejectsOutOfRangeAndInconsistentFigures() throws {
        var text = try String(contentsOf: Self.sourcePolicies.appendingPathComponent("default.toml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "compression_level = 3", with: "compression_level = 40")
        #expect(throws: CoreError.self) { try Policy(toml: try TOML.parse(text), source: "t") }
        var swapped = try String(contentsOf: Self.sourcePolicies.appendingPathComponent("default.toml"), encoding: .utf8)
        swapped = swapped.replacingOccurrences(of: "chunk_min_bytes = 262144", with: "chunk_min_bytes = 2097152")
        #expect(throws: CoreError.self) { try Policy(toml: try TOML.parse(swapped), source: "t") }
    }
}

@Suite struct ValueTests {
    @Test func durations() {
        #expect(PolicyDuration("90d")?.seconds == 90.0 * 86400)
        #expect(PolicyDuration("12h")?.seconds == 43200.0)
        #expect(PolicyDuration("2w")?.seconds == 14.0 * 86400)
        #expect(PolicyDuration("5x") == nil)
        #expect(PolicyDuration("-1d") == nil)
        #expect(PolicyDuration(seconds: 30 * 86400).description == "30d")
    }

    @Test func times() throws {
        #expect(TimeFormat.parse("2026-11-27T10:00:00Z")?.timeIntervalSince1970 == 1_795_773_600)
        #expect(TimeFormat.parse("2026-11-27 10:00:00")?.timeIntervalSince1970 == 1_795_773_600)
        #expect(TimeFormat.parse("2026-11-27T11:00:00+01:00")?.timeIntervalSince1970 == 1_795_773_600)
        #expect(TimeFormat.parse("2026-11-27")?.timeIntervalSince1970 == 1_795_737_600)
        #expect(TimeFormat.parse("@1795773600")?.timeIntervalSince1970 == 1_795_773_600)
        #expect(TimeFormat.parse("yesterday") == nil)
        #expect(TimeFormat.string(Date(timeIntervalSince1970: 1_795_773_600)) == "2026-11-27T10:00:00Z")
    }

    @Test func objectIDHexRoundTripAndOrder() throws {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
        let id = try #require(ObjectID(hex: hex))
        #expect(id.hex == hex)
        #expect(id.bytes[0] == 0x00 && id.bytes[1] == 0x11 && id.bytes[31] == 0xff)
        #expect(ObjectID(hex: "zz") == nil)
        let smaller = try #require(ObjectID(hex: "00" + String(repeating: "f", count: 62)))
        let larger = try #require(ObjectID(hex: "01" + String(repeating: "0", count: 62)))
        #expect(smaller < larger)
    }

    @Test func byteWriterAndReaderAgree() throws {
        var w = ByteWriter()
        w.varint(UInt64(300))
        w.svarint(-5)
        w.u32(0xDEADBEEF)
        w.string("Zürich")
        w.varint(UInt64.max)
        // 300 as LEB128 is AC 02; -5 zig-zag is 9.
        #expect(Array(w.bytes.prefix(3)) == [0xAC, 0x02, 0x09])
        var r = ByteReader(w.bytes)
        #expect(try r.varint() == 300)
        #expect(try r.svarint() == -5)
        #expect(try r.u32() == 0xDEADBEEF)
        #expect(try r.string() == "Zürich")
        #expect(try r.varint() == UInt64.max)
        #expect(r.isAtEnd)
        var short = ByteReader([0x80])
        #expect(throws: ByteReader.Truncated.self) { try short.varint() }
    }

    /// Found by Benchmarks/fuzz.sh (target tree): a length near Int.max made `offset + n`
    /// overflow inside the bounds check and trap instead of throwing.
    @Test func lengthNearIntMaxThrowsInsteadOfTrapping() throws {
        var w = ByteWriter()
        w.u8(1)
        w.varint(UInt64(Int.max))
        var r = ByteReader(w.bytes)
        _ = try r.u8()
        #expect(throws: ByteReader.Truncated.self) { try r.data() }
        var r2 = ByteReader([1, 2, 3])
        _ = try r2.u8()
        #expect(throws: ByteReader.Truncated.self) { try r2.raw(Int.max) }
    }
}

@Suite struct BlockingQueueTests {
    @Test func deliversEverythingInOrderAcrossThreads() {
        let q = BlockingQueue<Int>(capacity: 3)
        let received = Locked([Int]())
        let consumer = Thread {
            while let v = q.pop() { received.withLock { $0.append(v) } }
        }
        consumer.start()
        for i in 0..<1000 { q.push(i) }
        q.close()
        while received.current.count < 1000 { usleep(1000) }
        #expect(received.current == Array(0..<1000))
        #expect(q.push(1) == false)
    }
}
