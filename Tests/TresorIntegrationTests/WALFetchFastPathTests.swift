import Foundation
import Testing
import TresorPostgres
import TresorTestSupport

@testable import TresorEngine

/// The restore_command a restore writes starts with a shell step that renames a segment out of
/// the restore's own spool directory, and otherwise runs `tresor pg wal-fetch` (issue 15).
extension RecoverySafetyTests {
    /// Runs `command` as PostgreSQL's `restore_command` would (`%f`, `%p` and `%%` replaced,
    /// through /bin/sh); returns the exit status.
    func runRestoreCommand(_ command: String, file: String, destination: String) throws -> Int32 {
        var line = ""
        var chars = command.makeIterator()
        while let c = chars.next() {
            guard c == "%" else {
                line.append(c)
                continue
            }
            switch chars.next() {
            case "f": line += file
            case "p": line += destination
            case "%": line += "%"
            case let other?: line += "%" + String(other)
            case nil: line += "%"
            }
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", line]
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Three archived segments, the source stopped, and a `--latest` restore (server not
    /// started) whose prefetcher placed all three in the restore's spool directory.
    func restoredWithSpooledSegments(_ f: PostgresFixture) throws -> (segments: [String], pgdata: String, command: String, dir: String) {
        let segments = try archiveThreeSegments(f)
        try f.cluster.stop()
        let pgdata = f.dir.sub("restored").path
        let r = try #require(try f.expectOK(["--json", "pg", "restore", "acme", "--pgdata", pgdata, "--latest"]).json())
        let command = try #require(r["restoreCommand"] as? String, "\(r)")
        return (segments, pgdata, command, try f.runDirectory(restoreCommand: command, holding: segments))
    }

    @Test func aSegmentTheShellTakesFromTheRestoresSpoolIsTheArchivedSegmentAndTheSlowPathStillDeliversWithoutIt() throws {
        let f = try PostgresFixture()
        let (segments, pgdata, command, dir) = try restoredWithSpooledSegments(f)
        let conf = try String(contentsOfFile: pgdata + "/postgresql.auto.conf", encoding: .utf8)
        #expect(conf.contains("restore_command = \(confQuoted(command))"), "\(conf)")

        // Fast path: the shell renames the spooled segment into place; no wal-fetch ran (it would
        // have recorded the segment for the prefetcher in .asked).
        let out = f.dir.sub("delivered").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(try runRestoreCommand(command, file: segments[0], destination: out + "/RECOVERYXLOG") == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/RECOVERYXLOG")) == (try f.archivedBytes(segments[0])))
        #expect(!FileManager.default.fileExists(atPath: dir + "/" + segments[0]), "taken from the spool")
        #expect(!FileManager.default.fileExists(atPath: dir + "/.asked"), "tresor pg wal-fetch ran for a spooled segment")

        // A history file never comes from the spool, even with one of that name there: the
        // archive answers (timeline 1 has none: exit 1), the planted file stays.
        try Data("planted".utf8).write(to: URL(fileURLWithPath: dir + "/00000001.history"))
        #expect(try runRestoreCommand(command, file: "00000001.history", destination: out + "/h") == 1)
        #expect(!FileManager.default.fileExists(atPath: out + "/h"))
        #expect(FileManager.default.contents(atPath: dir + "/00000001.history") == Data("planted".utf8))

        // The spool directory gone (its prefetcher ended): the slow path delivers the same bytes.
        // Moved away first: the prefetcher, still running, removes files of its own meanwhile.
        try FileManager.default.moveItem(atPath: dir, toPath: dir + ".gone")
        try FileManager.default.removeItem(atPath: dir + ".gone")
        #expect(try runRestoreCommand(command, file: segments[1], destination: out + "/RECOVERYXLOG") == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/RECOVERYXLOG")) == (try f.archivedBytes(segments[1])))
        // And an absent segment is still "not archived" (1), never a fast-path success.
        #expect(try runRestoreCommand(command, file: "0000000100000000000000F0", destination: out + "/absent") == 1)
        #expect(!FileManager.default.fileExists(atPath: out + "/absent"))
    }

    @Test func aSpooledFileLeftByAnotherRestoreOrInTheSharedSpoolIsNeverDelivered() throws {
        let f = try PostgresFixture()
        let segments = try archiveThreeSegments(f)
        try f.cluster.stop()
        // The wrong bytes under the right name (another cluster's segment, say), in the shared
        // spool and in another restore's directory.
        let wrong = Data(repeating: 0x5A, count: 16 << 20)
        let spool = f.home + "/spool/pg/acme"
        let other = spool + "/r-00000000000000aa"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        for dir in [spool, other] { try wrong.write(to: URL(fileURLWithPath: dir + "/" + segments[1])) }

        let pgdata = f.dir.sub("restored").path
        try f.expectOK(["pg", "restore", "acme", "--pgdata", pgdata, "--latest", "--run"])
        let restored = try ScratchCluster(adopting: pgdata, in: f.dir)
        try restored.start()
        #expect(try restored.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM marker") == (1...12).map(String.init).joined(separator: ","))
        try restored.stop()
        for dir in [spool, other] {
            #expect(FileManager.default.contents(atPath: dir + "/" + segments[1]) == wrong, "\(dir) was read")
        }
    }

    @Test func theSegmentASelfTestWithholdsIsNotDeliveredEvenWhenSpooled() throws {
        let f = try PostgresFixture()
        let (segments, pgdata, command, dir) = try restoredWithSpooledSegments(f)
        // The drill's damage, with a target in the last segment.
        let lastStart = try #require(UInt64(segments[2].suffix(8), radix: 16)) * WALName.segmentSize
        let site = DrillDamageSite(pgdata: pgdata, targetLSN: lastStart + 100, restoreCommand: command)
        #expect(try DrillDamages.MissingWALSegment().damage(restored: site))
        let conf = try String(contentsOfFile: pgdata + "/postgresql.auto.conf", encoding: .utf8)
        let line = try #require(conf.split(separator: "\n").last { $0.hasPrefix("restore_command = '") })
        let withheld = String(line.dropFirst("restore_command = '".count).dropLast()).replacingOccurrences(of: "''", with: "'")
            .replacingOccurrences(of: "\\\\", with: "\\")
        #expect(withheld.hasSuffix(command), "\(withheld)")

        let out = f.dir.sub("delivered").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(try runRestoreCommand(withheld, file: segments[2], destination: out + "/RECOVERYXLOG") == 1)
        #expect(!FileManager.default.fileExists(atPath: out + "/RECOVERYXLOG"))
        #expect(FileManager.default.fileExists(atPath: dir + "/" + segments[2]), "the withheld segment left the spool")
        // The others still come, from the spool.
        #expect(try runRestoreCommand(withheld, file: segments[1], destination: out + "/RECOVERYXLOG") == 0)
        #expect(!FileManager.default.fileExists(atPath: dir + "/" + segments[1]))
    }
}

extension PostgresFixture {
    /// The segment as the archive holds it, fetched without any spool.
    func archivedBytes(_ segment: String) throws -> Data {
        let out = dir.sub("reference-\(segment)").path
        try expectOK(["pg", "wal-fetch", "acme", segment, out])
        return try Data(contentsOf: URL(fileURLWithPath: out))
    }

    /// The run directory a restore's restore_command names, and waits (bounded) until its
    /// prefetcher placed each of `segments` there.
    func runDirectory(restoreCommand: String, holding segments: [String]) throws -> String {
        let run = try #require(restoreCommand.split(separator: " ").first { WALSpool.isRunName(String($0)) }.map(String.init), "\(restoreCommand)")
        let spool = home + "/spool/pg/acme/" + run
        for _ in 0..<300 where !segments.allSatisfy({ FileManager.default.fileExists(atPath: spool + "/" + $0) }) {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let held = (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []  // none: the expectation below says so
        #expect(Set(segments).isSubset(of: held), "the prefetcher placed \(held.sorted()) in \(spool)")
        return spool
    }
}
