import Foundation
import Testing
import TresorTestSupport

@Suite(.serialized) struct DocumentRoundTripTests {
    @Test func generatedTreeRestoresByteForByteWithMetadata() throws {
        let f = try Fixture()
        let backup = try f.expectOK(["--json", "docs", "backup", "acme"])
        let json = try #require(backup.json(), "backup --json prints one JSON object: \(backup.stdout)")
        let snapshot = try #require(json["snapshot"] as? [String: Any])
        #expect(snapshot["files"] as? Int == 2009)
        let (restored, r) = try f.restore()
        #expect(r.code == 0, "\(r.stderr)")
        #expect(TreeComparer.differences(f.docs, restored) == [])
        // Small files are packed together: far fewer objects than files.
        #expect(f.packs().count < 40, "\(f.packs().count) packs for 2009 files")
        let check = try f.expectOK(["check", "acme", "--read-data"])
        #expect(check.stdout.contains(": ok"))
    }

    @Test func incrementalBackupReadsOnlyChangesAndBothStatesRestore() throws {
        let f = try Fixture()
        let first = try #require(try f.expectOK(["--json", "docs", "backup", "acme"]).json())
        let firstID = try #require((first["snapshot"] as? [String: Any])?["id"] as? String)
        let before = f.dir.sub("before")
        // cp -a keeps mtimes, which FileManager's copy does not.
        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: "/bin/cp")
        cp.arguments = ["-a", f.docs.path, before.path]
        try cp.run()
        cp.waitUntilExit()

        // Change the tree: modify, add, delete, rename, chmod, a new empty directory.
        try Data("changed".utf8).write(to: f.docs.appendingPathComponent("contracts/doc-6.txt"))
        try Data(repeating: 42, count: 3 << 20).write(to: f.docs.appendingPathComponent("scans/new.bin"))
        try FileManager.default.removeItem(at: f.docs.appendingPathComponent("contracts/doc-12.txt"))
        try FileManager.default.moveItem(
            at: f.docs.appendingPathComponent("scans/doc-4.txt"),
            to: f.docs.appendingPathComponent("scans/renamed.txt"))
        try FileManager.default.createDirectory(at: f.docs.appendingPathComponent("fresh/empty"), withIntermediateDirectories: true)

        let second = try #require(try f.expectOK(["--json", "docs", "backup", "acme"]).json())
        #expect(second["parent"] as? String == firstID)
        let filesRead = try #require(second["filesRead"] as? Int)
        // The modified file, the new one, and the renamed one (new path): nothing else is read.
        #expect(filesRead == 3, "read \(filesRead) files")

        let (newState, r2) = try f.restore("latest")
        #expect(r2.code == 0)
        #expect(TreeComparer.differences(f.docs, newState) == [])
        let (oldState, r1) = try f.restore(String(firstID.prefix(12)))
        #expect(r1.code == 0)
        #expect(TreeComparer.differences(before, oldState) == [])

        let list = try #require(try f.expectOK(["--json", "snapshots", "acme"]).jsonArray())
        #expect(list.count == 2)
    }

    @Test func restoreOfOnePathAndRefusals() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 200; o.largeFiles = 1; return o
            }())
        try f.expectOK(["docs", "backup", "acme"])
        let target = f.dir.sub("partial")
        try f.expectOK(["docs", "restore", "acme", "--to", target.path, "--path", "docs/invoices"])
        #expect(TreeComparer.differences(f.docs.appendingPathComponent("invoices"), target.appendingPathComponent("docs/invoices")) == [])
        #expect(!FileManager.default.fileExists(atPath: target.appendingPathComponent("docs/contracts").path))
        // A non-empty target is refused with exit 2 and a hint.
        let again = try f.tresor.run(["docs", "restore", "acme", "--to", target.path])
        #expect(again.code == 2)
        #expect(again.stderr.contains("not empty") && again.stderr.contains("hint:"))
        let missing = try f.tresor.run(["docs", "restore", "acme", "--to", f.dir.sub("x").path, "--path", "docs/nope"])
        #expect(missing.code == 2)
    }

    @Test func aFileThatKeepsChangingIsFlagged() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 10; o.largeFiles = 0; return o
            }())
        let growing = f.docs.appendingPathComponent("growing.log")
        try Data(repeating: 1, count: 32 << 20).write(to: growing)
        let handle = try FileHandle(forWritingTo: growing)
        let stop = Locked2Flag()
        let writer = Thread {
            handle.seekToEndOfFile()
            while !stop.isSet {
                handle.write(Data(repeating: 2, count: 4096))
                usleep(200)
            }
        }
        writer.start()
        let r = try f.tresor.run(["--json", "docs", "backup", "acme"])
        stop.set()
        #expect(r.code == 0, "\(r.stderr)")
        let snapshot = try #require(r.json()?["snapshot"] as? [String: Any])
        #expect((snapshot["changedDuringBackup"] as? [String]) == ["docs/growing.log"])
    }
}

final class Locked2Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
