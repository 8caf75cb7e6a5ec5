import Foundation
import Testing
import TresorStore
import TresorTestSupport

/// Deletion against writers that run at the same time, and on versioned S3 buckets.
@Suite(.serialized) struct DeletionLockTests {
    static let day91 = DeletionTests.day91

    /// The files (store objects) under `path`; a local store leaves empty directories behind.
    func listing(_ path: String) -> [String] {
        let e = FileManager.default.enumerator(atPath: path)
        var out: [String] = []
        while let p = e?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.append(p) }
        }
        return out.sorted()
    }

    /// The backup holds the tenant's lock while deletion starts: deletion waits for it, then
    /// deletes what it wrote too; a backup afterwards is refused and writes nothing.
    @Test func backupRunningDuringDeletionCannotResurrectTheTenantsData() throws {
        let f = try Fixture()
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["tenant", "end-contract", "acme", "--date", DeletionTests.end])
        var big = [UInt8](repeating: 0, count: 48 << 20)
        for i in stride(from: 0, to: big.count, by: 4096) { big[i] = UInt8(truncatingIfNeeded: i >> 12) }
        try Data(big).write(to: f.docs.appendingPathComponent("big.bin"))
        let backup = f.tresor.start(["docs", "backup", "acme"])
        backup.standardOutput = FileHandle.nullDevice
        try backup.run()
        waitUntilLockHeld(home: f.home, by: backup)
        let deletion = try f.tresor.run(["--now", Self.day91, "deletion", "run"])
        backup.waitUntilExit()
        #expect(backup.terminationStatus == 0)
        #expect(deletion.code == 0, "\(deletion.stdout) \(deletion.stderr)")
        #expect(listing(f.storePath + "/tenants/acme") == [], "left after deletion: \(listing(f.storePath + "/tenants/acme"))")

        let after = try f.tresor.run(["docs", "backup", "acme"])
        #expect(after.code == 2, "\(after.stderr)")
        #expect(after.stderr.contains("was deleted"), "\(after.stderr)")
        #expect(listing(f.storePath + "/tenants/acme") == [])
    }

    /// A deletion stopped after the keys went (the tenant row still there): a backup that takes
    /// the lock now would make new keys and write the tenant's data back. It must refuse.
    @Test func backupAfterAnInterruptedDeletionWouldMakeNewKeysAndWriteTheDataBack() throws {
        let f = try Fixture()
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["tenant", "end-contract", "acme", "--date", DeletionTests.end])
        let crashed = try f.tresor.run(["--now", Self.day91, "deletion", "run", "--crash-after", "keys-destroyed"])
        #expect(crashed.code != 0)
        let before = listing(f.storePath + "/tenants/acme")
        #expect(!before.isEmpty && !before.contains { $0.hasPrefix("keys/") }, "\(before)")
        for args in [["docs", "backup", "acme"], ["--now", Self.day91, "retention", "apply", "acme"]] {
            let r = try f.tresor.run(args)
            #expect(r.code == 2, "\(args): \(r.code) \(r.stderr)")
            #expect(r.stderr.contains("being deleted"), "\(r.stderr)")
        }
        #expect(listing(f.storePath + "/tenants/acme") == before)
        try f.expectOK(["--now", Self.day91, "deletion", "run"])
        #expect(listing(f.storePath + "/tenants/acme") == [])
    }

    /// On a bucket with versioning, deleting a key only adds a delete marker: the key envelopes'
    /// bytes would survive as noncurrent versions and crypto-shredding would shred nothing.
    @Test func deletionOnAVersionedBucketRemovesEveryVersionAndDeleteMarker() throws {
        let f = try S3Fixture(server: try SeaweedServer.shared())
        let s3 = try f.store()
        try s3.setVersioning(enabled: true)
        #expect(try s3.versioning() == .enabled)
        try f.expectOK(["docs", "backup", "acme"])
        // Noncurrent versions and a delete marker under the tenant's prefix, and an overwritten
        // key envelope (its first version is noncurrent).
        try s3.put("tenants/acme/stray", Array("one".utf8))
        try s3.put("tenants/acme/stray", Array("two".utf8))
        try s3.delete("tenants/acme/stray")
        let envelope = try #require(try s3.list(prefix: "tenants/acme/keys/").first)
        try s3.put(envelope.key, try s3.get(envelope.key))
        let versionsBefore = try s3.listVersions(prefix: "tenants/acme/")
        #expect(versionsBefore.contains { $0.isDeleteMarker })
        #expect(versionsBefore.filter { $0.key == envelope.key }.count == 2)
        // A neighbour whose versions must survive.
        try s3.put("tenants/acme2/keep", Array("x".utf8))
        try s3.put("tenants/acme2/keep", Array("y".utf8))

        try f.expectOK(["tenant", "end-contract", "acme", "--date", DeletionTests.end])
        let r = try f.expectOK(["--json", "--now", Self.day91, "deletion", "run"])
        #expect(try s3.listVersions(prefix: "tenants/acme/") == [], "versions left after deletion")
        #expect(try s3.listVersions(prefix: "tenants/acme2/").count == 2)
        let tenant = try #require((r.json()?["tenants"] as? [[String: Any]])?.first)
        #expect(tenant["state"] as? String == "deleted", "\(tenant)")
        let certificate = try f.expectOK(["--json", "evidence", "list", "--kind", "deletion"]).stdout
        #expect(certificate.contains("list-versions tenants/acme/ (versioning enabled): 0 versions and delete markers"), "\(certificate)")
    }

    /// Versioning on, and the versions under the tenant's keys cannot be listed (403): deleting
    /// the keys by name would only add delete markers and leave every envelope readable. The
    /// deletion must stop before destroying anything, name the store and exit 3.
    @Test func versionedBucketWhoseVersionsCannotBeListedStopsTheDeletionWithExitThree() throws {
        let server = try SeaweedServer.shared()
        let f = try S3Fixture(server: server)
        let bucket = SeaweedServer.noVersionListBucket
        try f.expectOK(["store", "add", "vers", "--url", server.url(bucket: bucket, prefix: "tresor"), "--region", "eu-central"])
        try f.expectOK(["tenant", "add", "acme2", "--region", "eu-central", "--store", "vers", "--docs", f.docs.path])
        try f.expectOK(["docs", "backup", "acme2"])
        let s3 = try f.store(bucket: bucket)
        try s3.setVersioning(enabled: true)
        let before = try s3.listVersions(prefix: "tenants/acme2/")
        try f.expectOK(["tenant", "end-contract", "acme2", "--date", DeletionTests.end])

        var limited = f.tresor
        limited.environment["AWS_ACCESS_KEY_ID"] = server.noVersionListAccessKey
        limited.environment["AWS_SECRET_ACCESS_KEY"] = server.noVersionListSecretKey
        let r = try limited.run(["--now", Self.day91, "deletion", "run"])
        #expect(r.code == 3, "\(r.code): \(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("store vers has versioning enabled") && r.stdout.contains("could not be listed or deleted"), "\(r.stdout)")
        #expect(try s3.listVersions(prefix: "tenants/acme2/") == before, "nothing may be destroyed half-way")
        let certificates = try f.expectOK(["evidence", "list", "--kind", "deletion"]).stdout
        #expect(!certificates.contains("acme2"), "no certificate for an unfinished deletion: \(certificates)")
    }
}
