import Foundation
import Testing
import TresorTestSupport

/// Post-contract deletion and the sweeper, through the binary, with an injected clock.
@Suite("Deletion and sweep")
struct DeletionTests {
    static let end = "2026-01-01T00:00:00Z"
    static let day89 = "2026-03-31T00:00:00Z"
    static let day91 = "2026-04-02T00:00:00Z"

    /// A home with `acme` (to delete) and `acme2` (live, similarly named), both backed up.
    static func twoTenants() throws -> Fixture {
        let f = try Fixture()
        try CorpusBuilder.build(at: f.dir.sub("docs2"), options: CorpusBuilder.Options())
        try f.expectOK(["tenant", "add", "acme2", "--region", "eu-central", "--store", "local", "--docs", f.dir.sub("docs2").path])
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["docs", "backup", "acme2"])
        try f.expectOK(["tenant", "end-contract", "acme", "--date", end])
        return f
    }

    static func tree(_ path: String) -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: path)
        while let rel = e?.nextObject() as? String {
            if let d = FileManager.default.contents(atPath: path + "/" + rel) { out[rel] = d }
        }
        return out
    }

    @Test func deletionBeforeTheDeadlineOrUnderAHoldWouldDestroyDataStillPromised() throws {
        let f = try Self.twoTenants()
        let before = Self.tree(f.storePath + "/tenants/acme")
        #expect(!before.isEmpty)
        let r89 = try f.tresor.run(["--now", Self.day89, "deletion", "run"])
        #expect(r89.code == 0, "\(r89.stderr)")
        #expect(Self.tree(f.storePath + "/tenants/acme") == before)

        // A crash right after the plan was recorded, then a hold: the rerun must wait too.
        let crashed = try f.tresor.run(["--now", Self.day91, "deletion", "run", "--crash-after", "planned"])
        #expect(crashed.code != 0)
        try f.expectOK(["tenant", "hold", "acme", "--reason", "litigation 42", "--by", "legal"])
        let held = try f.tresor.run(["--now", Self.day91, "deletion", "run"])
        #expect(held.code == 0)
        #expect(held.stdout.contains("held\tacme"))
        #expect(Self.tree(f.storePath + "/tenants/acme") == before)
        let cal = try f.tresor.run(["--now", Self.day91, "deletion", "calendar"])
        #expect(cal.code == 3, "a hold leaves the last-copy date open: \(cal.stdout)")
        try f.expectOK(["tenant", "release", "acme"])
    }

    @Test func deletionAfterTheDeadlineLeavesNoCopyAndTouchesNoOtherTenant() throws {
        let f = try Self.twoTenants()
        let other = Self.tree(f.storePath + "/tenants/acme2")
        let cal = try f.tresor.run(["--now", Self.day89, "deletion", "calendar"])
        #expect(cal.code == 0, "\(cal.stdout)")
        #expect(cal.stdout.contains("2026-04-01"))

        let dry = try f.tresor.run(["--now", Self.day91, "deletion", "run", "--dry-run"])
        #expect(dry.code == 0)
        #expect(dry.stdout.contains("planned\tacme") && dry.stdout.contains("would destroy keys"), "\(dry.stdout)")
        #expect(!Self.tree(f.storePath + "/tenants/acme/keys").isEmpty, "a dry run destroyed keys")

        let r = try f.tresor.run(["--now", Self.day91, "deletion", "run"])
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("deleted\tacme"))
        #expect(Self.tree(f.storePath + "/tenants/acme").isEmpty)
        #expect(Self.tree(f.storePath + "/tenants/acme2") == other)

        let restore = try f.tresor.run(["docs", "restore", "acme", "--to", f.dir.sub("r").path])
        #expect(restore.code == 2)
        #expect(restore.stderr.contains("tenant 'acme' was deleted after its contract ended"), "\(restore.stderr)")
        let verify = try f.tresor.run(["evidence", "verify"])
        #expect(verify.code == 0, "\(verify.stdout)")
        let list = try f.tresor.run(["--json", "evidence", "list", "--kind", "deletion"])
        #expect(list.stdout.contains("\"tenant\":\"acme\""))
        #expect(list.stdout.contains("\"contract_end\":\"2026-01-01T00:00:00"), "\(list.stdout)")
        #expect(list.stdout.contains("\"keys:local\""), "\(list.stdout)")
        let status = try f.tresor.run(["--now", Self.day91, "drill", "status"])
        #expect(!status.stdout.contains("\tacme\t"), "\(status.stdout)")
        #expect(status.stdout.contains("\tacme2\t"))

        let runs = Process()
        runs.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        runs.arguments = [
            f.home + "/catalog.sqlite",
            "SELECT kind, status, tenant IS NULL FROM runs WHERE kind = 'deletion'; SELECT COUNT(*) FROM runs WHERE tenant = 'acme'",
        ]
        let pipe = Pipe()
        runs.standardOutput = pipe
        try runs.run()
        runs.waitUntilExit()
        #expect(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "deletion|ok|1\n0\n")

        // A second run is idempotent: nothing more to do, no second certificate.
        let again = try f.tresor.run(["--now", Self.day91, "deletion", "run"])
        #expect(again.code == 0)
        let list2 = try f.tresor.run(["--json", "evidence", "list", "--kind", "deletion"])
        #expect(list2.stdout.components(separatedBy: "\"kind\":\"deletion\"").count == 2)
    }

    @Test func aCrashAfterKeyDestructionLeavesUndeletableCiphertextBehind() throws {
        let f = try Self.twoTenants()
        let crashed = try f.tresor.run(["--now", Self.day91, "deletion", "run", "--crash-after", "keys-destroyed"])
        #expect(crashed.code != 0)
        #expect(Self.tree(f.storePath + "/tenants/acme/keys").isEmpty)
        #expect(!Self.tree(f.storePath + "/tenants/acme/data").isEmpty, "the crash came before the data went")
        let rerun = try f.tresor.run(["--now", Self.day91, "deletion", "run"])
        #expect(rerun.code == 0, "\(rerun.stdout)\n\(rerun.stderr)")
        #expect(Self.tree(f.storePath + "/tenants/acme").isEmpty)
        let crashed2Home = try Self.twoTenants()
        let c2 = try crashed2Home.tresor.run(["--now", Self.day91, "deletion", "run", "--crash-after", "data-deleted"])
        #expect(c2.code != 0)
        let r2 = try crashed2Home.tresor.run(["--now", Self.day91, "deletion", "run"])
        #expect(r2.code == 0, "\(r2.stdout)\n\(r2.stderr)")
        #expect(r2.stdout.contains("certificate"))
    }

    @Test func sweepFindsResiduesOfADeletedTenantButNeverALiveOne() throws {
        let f = try Self.twoTenants()
        let hunt = f.dir.sub("hunt")
        try FileManager.default.createDirectory(at: hunt, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: hunt.appendingPathComponent("acme2-live"), withIntermediateDirectories: true)
        try f.expectOK(["--now", Self.day91, "deletion", "run"])
        let clean = try f.tresor.run(["--now", Self.day91, "sweep", "--root", hunt.path])
        #expect(clean.code == 0, "\(clean.stdout)")

        // A renamed copy of a document, a folder named after the tenant, an orphan object, an
        // old scratch directory.
        let doc = try FileManager.default.subpathsOfDirectory(atPath: f.docs.path).first {
            (try? FileManager.default.attributesOfItem(atPath: f.docs.path + "/" + $0)[.type] as? FileAttributeType) == .typeRegular
                && ((try? FileManager.default.attributesOfItem(atPath: f.docs.path + "/" + $0)[.size] as? Int) ?? 0) > 0
        }!
        try FileManager.default.copyItem(atPath: f.docs.path + "/" + doc, toPath: hunt.appendingPathComponent("invoice-copy.bin").path)
        try FileManager.default.createDirectory(at: hunt.appendingPathComponent("backup_acme_old"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: f.storePath + "/tenants/acme/data/ff", withIntermediateDirectories: true)
        try Data("orphan".utf8).write(to: URL(fileURLWithPath: f.storePath + "/tenants/acme/data/ff/ffff"))
        try FileManager.default.createDirectory(atPath: f.home + "/scratch/acme", withIntermediateDirectories: true)

        let found = try f.tresor.run(["--now", Self.day91, "--json", "sweep", "--root", hunt.path])
        #expect(found.code == 3, "\(found.stdout)\n\(found.stderr)")
        for needle in ["invoice-copy.bin", "backup_acme_old", "tenants/acme/data/ff/ffff", "scratch/acme"] {
            #expect(found.stdout.contains(needle), "\(needle) not found: \(found.stdout)")
        }
        #expect(!found.stdout.contains("acme2"), "a live tenant was reported: \(found.stdout)")

        let purged = try f.tresor.run(["--now", Self.day91, "sweep", "--root", hunt.path, "--purge"])
        #expect(purged.code == 3)
        let after = try f.tresor.run(["--now", Self.day91, "sweep", "--root", hunt.path])
        #expect(after.code == 0, "\(after.stdout)")
        #expect(FileManager.default.fileExists(atPath: hunt.appendingPathComponent("acme2-live").path))
    }

    @Test func sweepFindsADatabaseNamedAfterADeletedTenant() throws {
        let f = try Self.twoTenants()
        try f.expectOK(["--now", Self.day91, "deletion", "run"])
        let cluster = try ScratchCluster()
        try cluster.start()
        defer { try? cluster.stop() }  // test cleanup
        let clean = try f.tresor.run(["--now", Self.day91, "sweep", "--pg", cluster.dsn])
        #expect(clean.code == 0, "\(clean.stdout)")
        _ = try cluster.sql("CREATE DATABASE acme_restore")
        _ = try cluster.sql("CREATE DATABASE acme2")
        let found = try f.tresor.run(["--now", Self.day91, "sweep", "--pg", cluster.dsn])
        #expect(found.code == 3)
        #expect(found.stdout.contains("pg-database") && found.stdout.contains("acme_restore"))
        #expect(!found.stdout.contains(":acme2"))
    }
}

@Suite("Deletion and sweep on S3")
struct DeletionS3Tests {
    @Test func anAbandonedMultipartUploadOfADeletedTenantWouldEscapeDeletionAndSweep() throws {
        var o = CorpusBuilder.Options()
        o.smallFiles = 100
        o.largeFiles = 1
        o.largeFileSize = 1 << 20
        let f = try S3Fixture(server: try SeaweedServer.shared(), corpus: o)
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["tenant", "end-contract", "acme", "--date", DeletionTests.end])
        _ = try f.store().createMultipartUpload("tenants/acme/data/00/in-flight")
        let r = try f.tresor.run(["--now", DeletionTests.day91, "deletion", "run"])
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(try f.store().list(prefix: "tenants/acme/").isEmpty)
        #expect(try f.store().incompleteUploads(prefix: "tenants/acme/").isEmpty)

        _ = try f.store().createMultipartUpload("tenants/acme/data/01/abandoned")
        let found = try f.tresor.run(["--now", DeletionTests.day91, "sweep"])
        #expect(found.code == 3, "\(found.stdout)\n\(found.stderr)")
        #expect(found.stdout.contains("store-upload") && found.stdout.contains("tenants/acme/data/01/abandoned"), "\(found.stdout)")
        let purged = try f.tresor.run(["--now", DeletionTests.day91, "sweep", "--purge"])
        #expect(purged.code == 3)
        #expect(try f.store().incompleteUploads(prefix: "tenants/acme/").isEmpty)
        let clean = try f.tresor.run(["--now", DeletionTests.day91, "sweep"])
        #expect(clean.code == 0, "\(clean.stdout)")
    }
}
