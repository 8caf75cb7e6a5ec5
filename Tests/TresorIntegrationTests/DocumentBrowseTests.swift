import Foundation
import Testing
import TresorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `docs ls`, `find`, `diff`, `dump` and `restore --path` over 31 daily snapshots whose changes
/// the test planted itself.
@Suite(.serialized) struct DocumentBrowseTests {
    /// The planted history: one backup a day, 2026-10-01 … 2026-10-31.
    final class History: @unchecked Sendable {
        let f: Fixture
        static let invoice = "docs/invoices/invoice-2026-03.pdf"
        let v1 = History.bytes(seed: 1, count: 40_000)
        let v2 = History.bytes(seed: 2, count: 41_000)
        let v3 = History.bytes(seed: 3, count: 39_000)
        let big = History.bytes(seed: 4, count: 3_000_000)
        /// `caf\xe9.txt` and `two\nlines.txt` in docs/odd.
        static let latin1 = Array("caf".utf8) + [0xE9] + Array(".txt".utf8)
        static let newline = Array("two\nlines.txt".utf8)

        static func bytes(seed: UInt64, count: Int) -> [UInt8] {
            var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
            return (0..<count).map { _ in
                s ^= s << 13
                s ^= s >> 7
                s ^= s << 17
                return UInt8(truncatingIfNeeded: s)
            }
        }

        static func day(_ d: Int) -> String { "2026-10-\(d < 10 ? "0" : "")\(d)" }

        init() throws {
            var o = CorpusBuilder.Options()
            o.smallFiles = 3
            o.largeFiles = 0
            f = try Fixture(corpus: o)
            for d in 1...31 {
                try plant(day: d)
                try f.expectOK(["--now", Self.day(d) + "T02:00:00Z", "docs", "backup", "acme"])
            }
        }

        func write(_ rel: String, _ content: [UInt8], day: Int) throws {
            let url = f.docs.deletingLastPathComponent().appendingPathComponent(rel)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(content).write(to: url)
            try FileManager.default.setAttributes(
                [.modificationDate: Date(timeIntervalSince1970: 1_790_000_000 + Double(day) * 86400)],
                ofItemAtPath: url.path)
        }

        func rawFile(_ name: [UInt8], _ content: String) {
            let path = Array((f.docs.path + "/odd/").utf8) + name + [0]
            let fd = path.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY | O_TRUNC, 0o644) } }
            precondition(fd >= 0)
            _ = content.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress!, $0.count - 1) }
            close(fd)
        }

        /// The planted changes of day `d`.
        func plant(day d: Int) throws {
            let invoice = f.docs.deletingLastPathComponent().appendingPathComponent(Self.invoice).path
            switch d {
            case 1:
                try write(Self.invoice, v1, day: d)
                try write("docs/invoices/invoice-2026-04.pdf", Array("april".utf8), day: d)
                try write("docs/big.bin", big, day: d)
                try write("docs/notes.txt", Array("notes".utf8), day: d)
                try write("docs/old/remove-me.txt", Array("bye".utf8), day: d)
                chmod(f.docs.path + "/notes.txt", 0o600)
                try FileManager.default.createDirectory(atPath: f.docs.path + "/odd", withIntermediateDirectories: true)
                rawFile(Self.latin1, "latin-1 name")
                rawFile(Self.newline, "newline name")
            case 5: try write(Self.invoice, v2, day: d)
            case 11: try FileManager.default.removeItem(atPath: f.docs.path + "/old/remove-me.txt")
            case 12:
                try write(Self.invoice, v3, day: d)
                chmod(f.docs.path + "/notes.txt", 0o640)
            case 20: try FileManager.default.removeItem(atPath: invoice)
            case 25: try write(Self.invoice, v1, day: d)
            default: break
            }
            try write("docs/daily/log-\(d).txt", Array("day \(d)".utf8), day: d)
        }

        func json(_ args: [String]) throws -> [String: Any] {
            let r = try f.expectOK(args + ["--json"])
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        }

        /// Runs `tresor` with standard output into a file; the exit code and that file's bytes.
        func dump(_ args: [String]) throws -> (Int32, [UInt8], String) {
            let out = f.dir.sub("dump-\(UUID().uuidString.prefix(6))")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            let p = f.tresor.start(args)
            let h = try FileHandle(forWritingTo: out)
            let err = Pipe()
            p.standardOutput = h
            p.standardError = err
            p.standardInput = FileHandle.nullDevice
            try p.run()
            let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            try h.close()
            return (p.terminationStatus, Array(try Data(contentsOf: out)), errText)
        }
    }

    static let history = Result { try History() }

    @Test func findMissesNoPlantedVersionOfAFileNorTheDayItWasDeleted() throws {
        let h = try Self.history.get()
        let r = try h.json(["docs", "find", "acme", "invoice-2026-03.pdf"])
        #expect(r["snapshotsSearched"] as? Int == 31)
        let files = r["files"] as? [[String: Any]] ?? []
        #expect(files.map { $0["path"] as? String } == [History.invoice])
        let versions = files.first?["versions"] as? [[String: Any]] ?? []
        func day(_ ref: Any?) -> String? { ((ref as? [String: Any])?["time"] as? String).map { String($0.prefix(10)) } }
        // v1 on days 1-4 and again 25-31, v2 on 5-11, v3 on 12-19; gone on day 20.
        #expect(versions.map { $0["size"] as? Int } == [h.v1.count, h.v2.count, h.v3.count])
        #expect(versions.map { $0["snapshots"] as? Int } == [4 + 7, 7, 8])
        #expect(versions.map { day($0["first"]) } == [History.day(1), History.day(5), History.day(12)])
        #expect(versions.map { day($0["last"]) } == [History.day(31), History.day(11), History.day(19)])
        #expect((files.first?["deletedIn"] as? [Any] ?? []).map(day) == [History.day(20)])
        #expect(files.first?["inLastSnapshot"] as? Bool == true)

        // A range, a path pattern and case folding.
        let ranged = try h.json([
            "docs", "find", "acme", "invoices/INVOICE-2026-0?.pdf", "--ignore-case",
            "--since", History.day(21), "--until", History.day(24),
        ])
        #expect(ranged["snapshotsSearched"] as? Int == 4)
        #expect((ranged["files"] as? [[String: Any]] ?? []).map { $0["path"] as? String } == ["docs/invoices/invoice-2026-04.pdf"])
        let empty = try h.dump(["docs", "find", "acme", "*.pdf", "--since", "2027-01-01"])
        #expect(empty.0 == 2 && empty.2.contains("no document snapshots from 2027-01-01"), "\(empty.2)")
        let text = try h.f.expectOK(["docs", "find", "acme", "invoice-*.pdf", "--path-only"]).stdout
        #expect(text == History.invoice + "\ndocs/invoices/invoice-2026-04.pdf\n")
    }

    @Test func diffBetweenTwoDaysListsExactlyThePlantedChanges() throws {
        let h = try Self.history.get()
        let r = try h.json(["docs", "diff", "acme", History.day(10), History.day(12)])
        func paths(_ key: String) -> [String] { (r[key] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }.sorted() }
        #expect(paths("added") == ["docs/daily/log-11.txt", "docs/daily/log-12.txt"])
        #expect(paths("removed") == ["docs/old/remove-me.txt"])
        #expect(paths("changed") == ["docs/invoices/invoice-2026-03.pdf", "docs/notes.txt"])
        let changes = Dictionary(uniqueKeysWithValues: (r["changed"] as? [[String: Any]] ?? []).map { ($0["path"] as? String ?? "", $0) })
        #expect(changes[History.invoice]?["change"] as? String == "content")
        #expect(changes[History.invoice]?["oldSize"] as? Int == h.v2.count)
        #expect(changes[History.invoice]?["newSize"] as? Int == h.v3.count)
        #expect(changes["docs/notes.txt"]?["change"] as? String == "metadata")
        #expect(r["addedBytes"] as? Int == 12 && r["removedBytes"] as? Int == 3)
    }

    @Test func dumpGivesTheStoredBytesAndRecordsTheAccessWithoutThePath() throws {
        let h = try Self.history.get()
        let (code, bytes, err) = try h.dump(["docs", "dump", "acme", History.invoice, "--snapshot", History.day(7)])
        #expect(code == 0, "\(err)")
        #expect(bytes == h.v2)
        let (bigCode, big, _) = try h.dump(["docs", "dump", "acme", "docs/big.bin"])
        #expect(bigCode == 0 && big == h.big)

        // Job history and evidence: the path's SHA-256, never the path.
        let runs = try Process.browseOutput("/usr/bin/sqlite3", [h.f.home + "/catalog.sqlite", "SELECT status FROM runs WHERE kind = 'docs-dump'"])
        #expect(runs == "ok\nok\n")
        let log = try String(contentsOfFile: h.f.home + "/evidence/log.jsonl", encoding: .utf8)
        let hashed = try Process.browseOutput("/bin/sh", ["-c", "printf '%s' '\(History.invoice)' | sha256sum"]).prefix(64)
        #expect(log.contains("\"kind\":\"document-access\""))
        #expect(log.contains(String(hashed)))
        #expect(!log.contains("invoice-2026-03"))
    }

    @Test func namesThatAreNotUTF8OrHoldNewlinesAreListedEscapedAndCanBeDumped() throws {
        let h = try Self.history.get()
        let text = try h.f.expectOK(["docs", "ls", "acme", "docs/odd", "--long"]).stdout
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2, "one line per entry, even for a name with a newline: \(text)")
        #expect(lines.contains { $0.hasSuffix("docs/odd/caf\\xe9.txt  [escaped]") }, "\(text)")
        #expect(lines.contains { $0.hasSuffix("docs/odd/two\\x0alines.txt  [escaped]") }, "\(text)")
        let r = try h.json(["docs", "ls", "acme", "docs/odd"])
        let hexes = (r["entries"] as? [[String: Any]] ?? []).compactMap { $0["pathHex"] as? String }
        #expect(hexes.contains(Array("docs/odd/".utf8 + History.latin1).map { String(format: "%02x", $0) }.joined()))

        let (c1, latin, _) = try h.dump(["docs", "dump", "acme", "docs/odd/caf\\xe9.txt"])
        #expect(c1 == 0 && latin == Array("latin-1 name".utf8))
        let (c2, nl, _) = try h.dump(["docs", "dump", "acme", "docs/odd/two\\x0alines.txt"])
        #expect(c2 == 0 && nl == Array("newline name".utf8))
    }

    @Test func pathsThatEscapeOrAreMalformedOrDirectoriesAreRefusedWithExitTwo() throws {
        let h = try Self.history.get()
        for args in [
            ["docs", "ls", "acme", "docs/../.."], ["docs", "ls", "acme", "/etc"],
            ["docs", "dump", "acme", "docs/../docs/notes.txt"], ["docs", "dump", "acme", "docs//notes.txt"],
            ["docs", "dump", "acme", "docs/\\xzz"], ["docs", "dump", "acme", "docs/invoices"],
            ["docs", "dump", "acme", "docs/nothing-here"],
            ["docs", "restore", "acme", "--to", h.f.dir.sub("never").path, "--path", "docs/.."],
        ] {
            let (code, out, err) = try h.dump(args)
            #expect(code == 2, "\(args): exit \(code) \(err)")
            #expect(out.isEmpty && err.contains("error:") && err.contains("hint:"), "\(args): \(err)")
        }
        #expect(!FileManager.default.fileExists(atPath: h.f.dir.sub("never").path))
    }

    @Test func restoreOfSeveralPathsRestoresThoseFilesAndDirectoriesOnly() throws {
        let h = try Self.history.get()
        let target = h.f.dir.sub("several")
        try h.f.expectOK([
            "docs", "restore", "acme", "--to", target.path, "--snapshot", History.day(6),
            "--path", History.invoice, "--path", "docs/daily",
        ])
        #expect(Array(try Data(contentsOf: target.appendingPathComponent(History.invoice))) == h.v2)
        let daily = try FileManager.default.contentsOfDirectory(atPath: target.path + "/docs/daily").sorted()
        #expect(daily == (1...6).map { "log-\($0).txt" }.sorted())
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.path + "/docs").sorted() == ["daily", "invoices"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.path + "/docs/invoices") == ["invoice-2026-03.pdf"])
        let log = try String(contentsOfFile: h.f.home + "/evidence/log.jsonl", encoding: .utf8)
        #expect(log.contains("\"action\":\"restore\""))
    }

    @Test func theOffsiteStoreAnswersTheSameFind() throws {
        let h = try Self.history.get()
        try h.f.expectOK(["store", "add", "off", "--url", "file://" + h.f.dir.sub("offsite").path, "--region", "eu-central"])
        try h.f.expectOK(["replicate", "acme", "--to", "off"])
        let local = try h.json(["docs", "find", "acme", "invoice-2026-03.pdf"])
        let off = try h.json(["docs", "find", "acme", "invoice-2026-03.pdf", "--store", "off"])
        #expect((off["files"] as? [[String: Any]])?.first?["versions"] as? [[String: Any]] != nil)
        #expect(NSDictionary(dictionary: local).isEqual(to: off))
        let (code, _, err) = try h.dump(["docs", "ls", "acme", "--store", "nowhere"])
        #expect(code == 2, "\(err)")
    }
}

extension Process {
    // (only these tests use it)
    /// Runs `tool` and returns its standard output.
    static func browseOutput(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
