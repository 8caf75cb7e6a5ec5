import Foundation
import Testing
import TresorTestSupport

@Suite(.serialized) struct KeysAndStoreCleanTests {
    static let tiny: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 20; o.largeFiles = 1; o.largeFileSize = 1 << 20; return o
    }()

    func json(_ r: TresorProcess.Result) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    /// Data files of the store (everything but key envelopes) with their contents.
    func dataObjects(_ f: Fixture) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: f.storePath + "/tenants")
        while let p = e?.nextObject() as? String {
            let full = f.storePath + "/tenants/" + p
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue, !p.contains("/keys/") {
                out[p] = try Data(contentsOf: URL(fileURLWithPath: full))
            }
        }
        return out
    }

    /// `keys rotate-master` re-wraps every tenant under a new master key without rewriting data;
    /// the old key stays usable until `--finish`, then only the new one opens anything.
    @Test func rotateMasterReWrapsEveryTenantAndKeepsTheOldKeyUntilFinish() throws {
        let f = try Fixture(corpus: Self.tiny)
        for t in ["beta", "gamma"] {
            try f.expectOK(["tenant", "add", t, "--region", "eu-central", "--store", "local", "--docs", f.docs.path])
        }
        for t in ["acme", "beta", "gamma"] { try f.expectOK(["docs", "backup", t]) }
        let off = f.dir.sub("off").path
        try f.expectOK(["store", "add", "off", "--url", "file://" + off, "--region", "eu-central"])
        try f.expectOK(["replicate", "acme", "--to", "off"])
        let keyFile = f.home + "/keys/master.key"
        let oldKey = try String(contentsOfFile: keyFile, encoding: .utf8)
        let before = try dataObjects(f)

        let r = try json(try f.expectOK(["--json", "keys", "rotate-master"]))
        #expect(r["rewrapped"] as? Int == 4, "three tenants in the primary store, one in the offsite store")
        // The offsite copy of acme's envelope is replaced by the same envelope as the primary's,
        // so a later replicate has nothing to add.
        let keys = { (root: String) in try FileManager.default.contentsOfDirectory(atPath: root + "/tenants/acme/keys") }
        #expect(try keys(off) == keys(f.storePath) && keys(off).count == 1)
        try f.expectOK(["replicate", "acme", "--to", "off"])
        #expect(try keys(off).count == 1)
        #expect(r["newKey"] as? Bool == true)
        let newKey = try String(contentsOfFile: keyFile, encoding: .utf8)
        #expect(newKey != oldKey)
        #expect(try String(contentsOfFile: keyFile + ".previous", encoding: .utf8) == oldKey)
        let (restored, rr) = try f.restore()
        #expect(rr.code == 0, "\(rr.stderr)")
        #expect(TreeComparer.differences(f.docs, restored) == [])
        // A second run has nothing left to do.
        let again = try json(try f.expectOK(["--json", "keys", "rotate-master"]))
        #expect(again["rewrapped"] as? Int == 0 && again["alreadyCurrent"] as? Int == 4 && again["newKey"] as? Bool == false)

        let fin = try json(try f.expectOK(["--json", "keys", "rotate-master", "--finish"]))
        #expect(fin["previousKeyRemoved"] as? Bool == true)
        #expect(!FileManager.default.fileExists(atPath: keyFile + ".previous"))
        #expect(try dataObjects(f) == before, "no data object was rewritten")
        try f.expectOK(["check", "--read-data"])
        // The old key alone opens nothing any more.
        try oldKey.write(toFile: keyFile, atomically: true, encoding: .utf8)
        // A key file others can read is refused before it is tried: keep it owner-only.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
        let refused = try f.tresor.run(["docs", "restore", "acme", "--to", f.dir.sub("nope").path])
        #expect(refused.code == 2 && refused.stderr.contains("wrong master key"), "\(refused.stderr)")
        // --finish without a rotation in progress is a usage error.
        try newKey.write(toFile: keyFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
        #expect(try f.tresor.run(["keys", "rotate-master", "--finish"]).code == 2)
    }

    /// One unreadable envelope used to stop every command of the tenant; now backups and restores
    /// go on with the good envelope and `check` names the bad one (exit 3).
    @Test func aDamagedEnvelopeIsNamedByCheckAndDoesNotLockTheTenantOut() throws {
        let f = try Fixture(corpus: Self.tiny)
        try f.expectOK(["docs", "backup", "acme"])
        let bad = f.storePath + "/tenants/acme/keys/0000000000000000"
        try "{\"format\":\"tresor-key-envelope\",\"ver".write(toFile: bad, atomically: true, encoding: .utf8)
        try f.expectOK(["docs", "backup", "acme"])
        let (restored, r) = try f.restore()
        #expect(r.code == 0, "\(r.stderr)")
        #expect(TreeComparer.differences(f.docs, restored) == [])
        let check = try f.tresor.run(["check", "acme"])
        #expect(check.code == 3, "\(check.stdout) \(check.stderr)")
        #expect(check.stdout.contains("tenants/acme/keys/0000000000000000"), "\(check.stdout)")
    }

    /// `store clean` removes temporaries older than the policy's age from a local store and says
    /// how many; a fresh one (a writer in flight) stays.
    @Test func storeCleanRemovesStaleTemporariesAndCountsThem() throws {
        let f = try Fixture(corpus: Self.tiny)
        try f.expectOK(["docs", "backup", "acme"])
        let stale = f.storePath + "/.tmp/killed.part", fresh = f.storePath + "/.tmp/in-flight.part"
        #expect(FileManager.default.createFile(atPath: stale, contents: Data(count: 100)))
        #expect(FileManager.default.createFile(atPath: fresh, contents: Data(count: 100)))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-2 * 86400)], ofItemAtPath: stale)
        let r = try json(try f.expectOK(["--json", "store", "clean", "local"]))
        #expect(r["removed"] as? Int == 1)
        #expect(r["olderThanSeconds"] as? Double == 86400)
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(FileManager.default.fileExists(atPath: fresh))
        try f.expectOK(["check", "--read-data"])
        #expect(try f.tresor.run(["store", "clean", "nostore"]).code == 2)
    }
}
