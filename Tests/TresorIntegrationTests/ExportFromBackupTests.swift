import Foundation
import Testing
import TresorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `tresor export --from-backup [--at TIME]` and `--since SNAPSHOT` over real clusters and
/// real repositories (issue 13).
@Suite("tresor export from backup", .serialized)
struct ExportFromBackupTests {
    /// Unpacks a tar archive with GNU tar and returns the bag folder.
    static func unpack(_ archive: String, into dir: URL, bag: String) throws -> URL {
        let target = dir.appendingPathComponent("unpacked-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try ScratchCluster.run("/usr/bin/tar", ["-xf", archive, "-C", target.path], asPostgres: false)
        return target.appendingPathComponent(bag)
    }

    static func bagitValidates(_ bag: URL) throws -> String {
        try ScratchCluster.run("/bin/bash", ["-c", "bagit.py --validate '\(bag.path)' 2>&1 || true"], asPostgres: false)
    }

    /// Rows of a CSV file as Python's csv module reads them (header first), joined by '|'.
    static func csvRows(_ path: String) throws -> [String] {
        let out = try ScratchCluster.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import csv, sys
                for row in csv.reader(open(sys.argv[1], newline='', encoding='utf-8')):
                    print('|'.join(row))
                """, path,
            ], asPostgres: false)
        return out.split(separator: "\n").map(String.init)
    }

    /// The regular files under `root` (no links, no folders), relative, sorted.
    static func regularFiles(_ root: String) throws -> [String] {
        try FileManager.default.subpathsOfDirectory(atPath: root).filter {
            try FileManager.default.attributesOfItem(atPath: root + "/" + $0)[.type] as? FileAttributeType == .typeRegular
        }.sorted()
    }

    /// Export directories and scratch servers the exports left under the home.
    static func leftovers(_ f: DrillFixture) -> [String] {
        let dirs = ((try? FileManager.default.contentsOfDirectory(atPath: f.home + "/scratch")) ?? []).filter { $0.hasPrefix("export-") }
        return dirs + f.scratchServers().map { "postgres pid \($0)" }
    }

    @Test("an export from backup at a past time holds exactly that time's rows, also for a tenant whose contract ended, and leaves no scratch copy")
    func exportFromBackupThatShowsAnotherMoment() throws {
        let f = try DrillFixture()
        try f.cluster.sql("CREATE TABLE ledger (id int PRIMARY KEY, note text)")
        try f.cluster.sql("INSERT INTO ledger SELECT g, 'before ' || g FROM generate_series(1, 7) g")
        Thread.sleep(forTimeInterval: 0.5)
        // T from the server's own clock, between the commits (commit times decide recovery).
        let at = try f.cluster.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        Thread.sleep(forTimeInterval: 0.5)
        try f.cluster.sql(
            "INSERT INTO ledger VALUES (8, 'after 8'), (9, 'after 9'); UPDATE ledger SET note = 'changed' WHERE id = 1; DELETE FROM ledger WHERE id = 2")
        try f.cluster.switchAndWaitForArchive()
        try f.expectOK(["tenant", "end-contract", "acme", "--date", TimeFormatForTests.today()])

        let out = f.dir.sub("acme-at.tar").path
        let r = try f.tresor.run(["--json", "export", "acme", "--from-backup", "--at", at, "--out", out])
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(Self.leftovers(f).isEmpty, "\(Self.leftovers(f))")
        let bag = try Self.unpack(out, into: f.dir.url, bag: "acme-at")
        let validation = try Self.bagitValidates(bag)
        #expect(validation.contains("is valid"), "\(validation)")

        // The CSV holds exactly the rows this test wrote before T, as Python reads them.
        let rows = try Self.csvRows(bag.path + "/data/database/tables/public.ledger.csv")
        #expect(rows == ["id|note"] + (1...7).map { "\($0)|before \($0)" }, "\(rows)")
        // dump.sql holds the same rows in its COPY block (the CSV's bytes).
        let dump = try String(contentsOfFile: bag.path + "/data/database/dump.sql", encoding: .utf8)
        let block =
            dump.components(separatedBy: "COPY public.ledger (id, note) FROM stdin WITH (FORMAT csv, HEADER true);\n").last?
            .components(separatedBy: "\\.\n").first ?? ""
        #expect(block == "id,note\n" + (1...7).map { "\"\($0)\",\"before \($0)\"\n" }.joined(), "\(block)")
        // The live cluster has moved on (else the test proves nothing).
        #expect(try f.cluster.sql("SELECT count(*) FROM ledger").trimmingCharacters(in: .whitespacesAndNewlines) == "8")

        let info = try String(contentsOfFile: bag.path + "/bag-info.txt", encoding: .utf8)
        #expect(info.contains("Tresor-Source: backup"))
        #expect(info.contains("Tresor-Database-Recovery-Target: "))
        #expect(info.contains("Tresor-Database-Base-Backup: "))
        #expect(info.contains("Tresor-Documents-Snapshot: "))
        // The documents are the backed-up ones, byte for byte.
        for i in [0, 29] {
            let original = try Data(contentsOf: URL(fileURLWithPath: f.docs + "/letters/doc-\(i).bin"))
            let exported = try Data(contentsOf: bag.appendingPathComponent("data/documents/docs/letters/doc-\(i).bin"))
            #expect(original == exported)
        }
        let json = r.json() ?? [:]
        #expect((json["database"] as? [String: Any])?["lsn"] as? String != nil)
        let list = try f.expectOK(["--json", "evidence", "list", "--kind", "export", "--tenant", "acme"])
        let payload = ((list.json()?["entries"] as? [[String: Any]])?.first?["payload"] as? [String: Any]) ?? [:]
        #expect(payload["source"] as? String == "backup")
        #expect(payload["database_rows"] as? Int ?? 0 > 100_000)
    }

    @Test("an export from backup that fails after its scratch server started leaves no scratch copy, no server and no archive")
    func failedExportFromBackupThatLeavesAServer() throws {
        let f = try DrillFixture()
        // A PostgreSQL bin folder without pg_dump: the scratch server starts, the dump cannot.
        let bin = f.dir.sub("bin-without-pg-dump")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        for tool in try FileManager.default.contentsOfDirectory(atPath: ScratchCluster.bin) where tool != "pg_dump" {
            try FileManager.default.createSymbolicLink(atPath: bin.path + "/" + tool, withDestinationPath: ScratchCluster.bin + "/" + tool)
        }
        let out = f.dir.sub("fails.tar").path
        let r = try f.tresor.run(["export", "acme", "--from-backup", "--pg-bin", bin.path, "--out", out])
        #expect(r.code == 1, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("pg_dump"), "\(r.stderr)")
        #expect(Self.leftovers(f).isEmpty, "\(Self.leftovers(f))")
        #expect(!FileManager.default.fileExists(atPath: out))
        // A target before the oldest base backup: refused (exit 2), and nothing left either.
        let early = try f.tresor.run(["export", "acme", "--from-backup", "--at", "2001-01-01T00:00:00Z", "--out", out])
        #expect(early.code == 2, "\(early.stderr)")
        #expect(Self.leftovers(f).isEmpty, "\(Self.leftovers(f))")
    }

    @Test("an export from backup killed with SIGKILL leaves a scratch server that the next export from backup, or drill clean, removes")
    func killedExportFromBackupThatLeavesAServerForever() throws {
        let f = try DrillFixture()
        func killMidExport() throws {
            let p = f.tresor.start(["export", "acme", "--from-backup", "--out", f.dir.sub("killed-\(UUID().uuidString.prefix(4)).tar").path])
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(120)
            func ready() -> Bool {
                ((try? FileManager.default.contentsOfDirectory(atPath: f.home + "/scratch")) ?? []).contains { d in
                    let log = (try? String(contentsOfFile: f.home + "/scratch/" + d + "/server/sock/server.log", encoding: .utf8)) ?? ""
                    return d.hasPrefix("export-") && log.contains("database system is ready to accept connections")
                }
            }
            while !ready() && p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
            try #require(p.isRunning, "the export ended before its scratch server was seen")
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(Self.leftovers(f).count == 2, "\(Self.leftovers(f))")  // the directory and its server
        }
        try killMidExport()
        let out = f.dir.sub("next.tar").path
        try f.expectOK(["export", "acme", "--from-backup", "--out", out])
        #expect(Self.leftovers(f).isEmpty, "\(Self.leftovers(f))")
        #expect(FileManager.default.fileExists(atPath: out))

        try killMidExport()
        let clean = try f.expectOK(["--json", "drill", "clean"])
        #expect(clean.json()?["serversStopped"] as? Int == 1, "\(clean.stdout)")
        #expect(Self.leftovers(f).isEmpty, "\(Self.leftovers(f))")
    }

    @Test("an export --since an earlier export's snapshot holds exactly the added and changed documents and lists the removed ones")
    func sinceExportThatMissesOrRepeatsDocuments() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 40; o.largeFiles = 1; return o
            }())
        try f.expectOK(["docs", "backup", "acme"])
        let first = try f.expectOK(["--json", "export", "acme", "--from-backup", "--out", f.dir.sub("full.tar").path])
        let fullBag = try Self.unpack(f.dir.sub("full.tar").path, into: f.dir.url, bag: "full")
        let fullInfo = try String(contentsOfFile: fullBag.path + "/bag-info.txt", encoding: .utf8)
        let snapshot = try #require(
            fullInfo.split(separator: "\n").first { $0.hasPrefix("Tresor-Documents-Snapshot: ") }?
                .dropFirst("Tresor-Documents-Snapshot: ".count)
        ).trimmingCharacters(in: .whitespaces)
        #expect(first.json()?["documentsSnapshot"] as? String == snapshot)

        // Change one file, add two (one in a new folder), remove one.
        let all = try Self.regularFiles(f.docs.path)
        let changed = all[0], removed = all[1]
        try Data("changed content\n".utf8).write(to: f.docs.appendingPathComponent(changed))
        try FileManager.default.removeItem(at: f.docs.appendingPathComponent(removed))
        try FileManager.default.createDirectory(at: f.docs.appendingPathComponent("new folder/inner"), withIntermediateDirectories: true)
        try Data("new\n".utf8).write(to: f.docs.appendingPathComponent("new folder/inner/added.txt"))
        try Data("also new, 100% ✓\n".utf8).write(to: f.docs.appendingPathComponent("added ✓.txt"))
        try f.expectOK(["docs", "backup", "acme"])

        let out = f.dir.sub("since.tar").path
        let r = try f.expectOK(["--json", "export", "acme", "--since", snapshot, "--out", out])
        let bag = try Self.unpack(out, into: f.dir.url, bag: "since")
        let validation = try Self.bagitValidates(bag)
        #expect(validation.contains("is valid"), "\(validation)")
        let files = try Self.regularFiles(bag.path + "/data/documents")
        #expect(files == ["docs/\(changed)", "docs/added ✓.txt", "docs/new folder/inner/added.txt"].sorted(), "\(files)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: bag.path + "/data/documents/docs/" + changed)) == Data("changed content\n".utf8))
        let removedList = try String(contentsOfFile: bag.path + "/tresor-removed-paths.txt", encoding: .utf8)
        #expect(removedList == "data/documents/docs/\(removed.replacingOccurrences(of: "%", with: "%25"))\n", "\(removedList)")
        let info = try String(contentsOfFile: bag.path + "/bag-info.txt", encoding: .utf8)
        #expect(info.contains("Tresor-Documents-Since-Snapshot: \(snapshot)"))
        #expect(info.contains("Tresor-Documents-Removed: 1"))
        #expect(r.json()?["sinceSnapshot"] as? String == snapshot)
        #expect(r.json()?["documentsSnapshot"] as? String != snapshot)

        // A snapshot newer than the one exported, and an unknown one: usage errors, nothing written.
        let unknown = try f.tresor.run(["export", "acme", "--since", "ffffffff", "--out", f.dir.sub("x.tar").path])
        #expect(unknown.code == 2 && unknown.stderr.contains("hint: "), "\(unknown.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.dir.sub("x.tar").path))
    }
}

enum TimeFormatForTests {
    /// Today's date (UTC) as YYYY-MM-DD.
    static func today() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        return f.string(from: Date())
    }
}
