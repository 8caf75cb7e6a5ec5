import Foundation
import Testing
import TresorTestSupport

/// Damage in a repository is found in full, named, answered with exit 3, and repaired where the
/// repository holds what is needed.
@Suite(.serialized) struct DamageTests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 200; o.largeFiles = 2; o.largeFileSize = 2 << 20; return o
    }()

    /// Flips one bit of the file at `path`, at `fraction` of its length.
    static func flipBit(_ path: String, at fraction: Double = 0.5, mask: UInt8 = 0x10) throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[Int(Double(bytes.count - 1) * fraction)] ^= mask
        try bytes.write(to: URL(fileURLWithPath: path))
    }

    static func files(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().map { dir + "/" + $0 }
    }

    /// A fixture with two document snapshots (so two index objects and two snapshot objects).
    static func twoSnapshots() throws -> Fixture {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["docs", "backup", "acme"])
        try Data("changed after the first backup\n".utf8).write(to: f.docs.appendingPathComponent("added-later.txt"))
        try f.expectOK(["docs", "backup", "acme"])
        return f
    }

    static func report(_ r: TresorProcess.Result) throws -> [String: Any] {
        let tenants = try #require(r.json()?["tenants"] as? [String: Any], "\(r.stdout) \(r.stderr)")
        return try #require(tenants["acme"] as? [String: Any])
    }

    @Test func aDamagedSnapshotIndexAndPackAreAllNamedInsteadOfStoppingAtTheFirst() throws {
        let f = try Self.twoSnapshots()
        let tenant = f.storePath + "/tenants/acme"
        let snapshot = try #require(Self.files(tenant + "/snapshots").first)
        let index = try #require(Self.files(tenant + "/index").first)
        let pack = try #require(f.packs().first)
        try Self.flipBit(snapshot)
        try Self.flipBit(index)
        try Self.flipBit(pack, at: 0.1)

        let r = try f.tresor.run(["--json", "check", "acme", "--read-data"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let report = try Self.report(r)
        let snapshots = try #require(report["damagedSnapshots"] as? [[String: Any]])
        #expect(snapshots.compactMap { $0["key"] as? String } == ["tenants/acme/snapshots/" + URL(fileURLWithPath: snapshot).lastPathComponent])
        let indexes = try #require(report["damagedIndexes"] as? [String: String])
        #expect(Array(indexes.keys) == ["tenants/acme/index/" + URL(fileURLWithPath: index).lastPathComponent])
        let packs = try #require(report["damagedPacks"] as? [String: String])
        #expect(Array(packs.keys) == [URL(fileURLWithPath: pack).lastPathComponent])
        // The other snapshot was still checked.
        #expect(report["snapshots"] as? Int == 1)
    }

    /// What a lost snapshot covered comes from the catalog's record of its backup run; a kind
    /// there that this build does not know is reported as a problem, never shown as a kind.
    @Test func aLostSnapshotsRecordNamingAnUnknownKindIsAProblemNotAKind() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["docs", "backup", "acme"])
        let snapshot = try #require(Self.files(f.storePath + "/tenants/acme/snapshots").first)
        try Self.flipBit(snapshot)
        _ = try Process.browseOutput(
            "/usr/bin/sqlite3",
            [
                f.home + "/catalog.sqlite",
                "UPDATE runs SET detail = replace(detail, '\"kind\":\"documents\"', '\"kind\":\"wal-dump\"') WHERE kind = 'docs-backup'",
            ])
        let r = try f.tresor.run(["--json", "check", "acme"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let report = try Self.report(r)
        let lost = try #require((report["damagedSnapshots"] as? [[String: Any]])?.first)
        #expect(lost["time"] is String, "the record was found: \(lost)")
        #expect(lost["kind"] == nil, "\(lost)")
        let problems = report["problems"] as? [String] ?? []
        #expect(problems.contains { $0.contains("names unknown snapshot kind 'wal-dump'") }, "\(problems)")
    }

    @Test func aDamagedKeyEnvelopeIsNamedAsDamageNotAWrongMasterKey() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["docs", "backup", "acme"])
        let envelope = try #require(Self.files(f.storePath + "/tenants/acme/keys").first)
        // Inside the sealed key's hex digits, near the end of the JSON.
        let text = try String(contentsOfFile: envelope, encoding: .utf8)
        let sealed = try #require(text.range(of: "\"sealed\""))
        let at = Double(text.utf8.distance(from: text.startIndex, to: sealed.upperBound) + 10) / Double(text.utf8.count - 1)
        try Self.flipBit(envelope, at: at, mask: 0x01)
        let r = try f.tresor.run(["--json", "check", "acme", "--read-data"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let keys = try #require(try Self.report(r)["damagedKeys"] as? [String: String])
        #expect(Array(keys.keys) == ["tenants/acme/keys/" + URL(fileURLWithPath: envelope).lastPathComponent])
    }

    @Test func aDamagedChunkerSizeInTheConfigIsNamedInsteadOfCrashingTheChunker() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["docs", "backup", "acme"])
        let config = f.storePath + "/tenants/acme/config"
        let text = try String(contentsOfFile: config, encoding: .utf8)
        let avg = try #require(text.range(of: "\"averageSize\" : "))
        // One bit of the last digit of the average size: no longer a power of two.
        var bytes = Array(text.utf8)
        let digits = text.utf8.distance(from: text.startIndex, to: avg.upperBound)
        var end = digits
        while bytes[end] >= 48 && bytes[end] <= 57 { end += 1 }
        bytes[end - 1] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: config))
        let r = try f.tresor.run(["--json", "check", "acme"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let keys = try #require(try Self.report(r)["damagedKeys"] as? [String: String])
        #expect(Array(keys.keys) == ["tenants/acme/config"])
    }

    @Test func aConfigNamingADataKeyNoEnvelopeHoldsIsNamedAsTheDamagedObject() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["docs", "backup", "acme"])
        let config = f.storePath + "/tenants/acme/config"
        var text = try String(contentsOfFile: config, encoding: .utf8)
        let range = try #require(text.range(of: #""dataKey" : ""#), "a version 2 config names its data key")
        let digit = text.index(range.upperBound, offsetBy: 3)
        text.replaceSubrange(digit...digit, with: text[digit] == "0" ? "1" : "0")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let r = try f.tresor.run(["--json", "check", "acme"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let keys = try #require(try Self.report(r)["damagedKeys"] as? [String: String])
        #expect(Array(keys.keys) == ["tenants/acme/config"])
    }

    /// A flip that leaves the config valid (a digit of its creation time) went unnoticed by the
    /// bit-flip harness before configs carried a MAC.
    @Test func aConfigWhoseCreationTimeChangedIsNamedByCheck() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["docs", "backup", "acme"])
        let config = f.storePath + "/tenants/acme/config"
        var text = try String(contentsOfFile: config, encoding: .utf8)
        let created = try #require(text.range(of: #""created" : "20"#))
        let digit = text.index(created.upperBound, offsetBy: 1)
        text.replaceSubrange(digit...digit, with: text[digit] == "7" ? "8" : "7")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let r = try f.tresor.run(["--json", "check", "acme"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let keys = try #require(try Self.report(r)["damagedKeys"] as? [String: String])
        #expect(Array(keys.keys) == ["tenants/acme/config"])
    }

    @Test func aSnapshotCopiedUnderAnotherSnapshotsNameIsRefused() throws {
        let f = try Self.twoSnapshots()
        let snaps = Self.files(f.storePath + "/tenants/acme/snapshots")
        try #require(snaps.count == 2)
        try FileManager.default.removeItem(atPath: snaps[1])
        try FileManager.default.copyItem(atPath: snaps[0], toPath: snaps[1])
        let r = try f.tresor.run(["--json", "check", "acme"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let damaged = try #require(try Self.report(r)["damagedSnapshots"] as? [[String: Any]])
        #expect(damaged.compactMap { $0["key"] as? String } == ["tenants/acme/snapshots/" + URL(fileURLWithPath: snaps[1]).lastPathComponent])
    }

    @Test func aDamagedIndexObjectIsRebuiltFromPackHeadersAndNothingIsLost() throws {
        let f = try Self.twoSnapshots()
        let indexes = Self.files(f.storePath + "/tenants/acme/index")
        for i in indexes { try Self.flipBit(i) }
        #expect(try f.tresor.run(["check", "acme"]).code == 3)
        let r = try f.expectOK(["--json", "repair", "index", "acme"])
        let result = try #require(r.json())
        #expect((result["damagedIndexObjects"] as? [String: String])?.count == indexes.count)
        #expect((result["packsDescribed"] as? Int) == f.packs().count)
        // The damaged objects are gone, the new index covers every pack, and every file restores.
        #expect(Set(Self.files(f.storePath + "/tenants/acme/index")).isDisjoint(with: indexes))
        try f.expectOK(["check", "acme", "--read-data"])
        let (restored, rr) = try f.restore()
        #expect(rr.code == 0, "\(rr.stderr)")
        #expect(TreeComparer.differences(f.docs, restored) == [])
    }

    @Test func aDamagedSnapshotIsReportedWithWhatItCoveredAndRemovedOnlyWhenTold() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["docs", "backup", "acme"])
        let victim = try #require(Self.files(f.storePath + "/tenants/acme/snapshots").first)
        try Self.flipBit(victim)

        let report = try f.tresor.run(["--json", "repair", "snapshots", "acme"])
        #expect(report.code == 3, "\(report.stdout) \(report.stderr)")
        let damaged = try #require(report.json()?["damaged"] as? [[String: Any]])
        #expect(damaged.count == 1)
        let regularFiles = try FileManager.default.subpathsOfDirectory(atPath: f.docs.path).filter { p in
            let type = try? FileManager.default.attributesOfItem(atPath: f.docs.appendingPathComponent(p).path)[.type] as? FileAttributeType
            return type == .typeRegular
        }
        #expect(damaged.first?["files"] as? Int == regularFiles.count)
        #expect(damaged.first?["roots"] as? [String] == [f.docs.path])
        #expect(damaged.first?["time"] as? String != nil)
        #expect(FileManager.default.fileExists(atPath: victim), "not removed without --remove")

        try f.expectOK(["repair", "snapshots", "acme", "--remove"])
        #expect(!FileManager.default.fileExists(atPath: victim))
        try f.expectOK(["check", "acme", "--read-data"])
    }

    @Test func replicateNeverReplacesADifferentObjectOnTheTarget() throws {
        let f = try Fixture(corpus: Self.small)
        let off = f.dir.sub("offsite").path
        try f.expectOK(["store", "add", "off", "--url", "file://" + off, "--region", "eu-central"])
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["replicate", "acme", "--to", "off"])
        // The target's copy of an index object now differs in size (say, another writer's).
        let index = try #require(Self.files(off + "/tenants/acme/index").first)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: index))
        bytes.append(0)
        try bytes.write(to: URL(fileURLWithPath: index))
        // And its snapshot differs in one bit, at the same size.
        let snapshot = try #require(Self.files(off + "/tenants/acme/snapshots").first)
        try Self.flipBit(snapshot)
        let flipped = try Data(contentsOf: URL(fileURLWithPath: snapshot))
        let r = try f.tresor.run(["--json", "replicate", "acme", "--to", "off"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let problems = try #require(r.json()?["problems"] as? [String])
        #expect(problems.count == 2)
        #expect(problems.contains { $0.hasPrefix("tenants/acme/index/" + URL(fileURLWithPath: index).lastPathComponent) })
        #expect(problems.contains { $0.hasPrefix("tenants/acme/snapshots/" + URL(fileURLWithPath: snapshot).lastPathComponent) })
        #expect(try Data(contentsOf: URL(fileURLWithPath: index)) == bytes, "left as it was")
        #expect(try Data(contentsOf: URL(fileURLWithPath: snapshot)) == flipped, "left as it was")
    }

    @Test func replicateDoesNotCopyADamagedSnapshot() throws {
        let f = try Fixture(corpus: Self.small)
        let off = f.dir.sub("offsite").path
        try f.expectOK(["store", "add", "off", "--url", "file://" + off, "--region", "eu-central"])
        try f.expectOK(["docs", "backup", "acme"])
        let snapshot = try #require(Self.files(f.storePath + "/tenants/acme/snapshots").first)
        try Self.flipBit(snapshot)
        let r = try f.tresor.run(["--json", "replicate", "acme", "--to", "off"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let problems = try #require(r.json()?["problems"] as? [String])
        #expect(problems.count == 1)
        #expect(problems.first?.contains(URL(fileURLWithPath: snapshot).lastPathComponent) == true)
        #expect(Self.files(off + "/tenants/acme/snapshots").isEmpty)
    }

    @Test func checkReadsTheStoreNotTheCacheAndABadCacheEntryIsRefetched() throws {
        let f = try S3Fixture(server: try SeaweedServer.shared(), corpus: Self.small)
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["snapshots", "acme"])  // fills the local cache
        let cached = try #require(Self.files(f.home + "/cache/s3/tenants/acme/snapshots").first, "the snapshot is cached")
        // A damaged cache entry costs a fetch, not the run.
        try Self.flipBit(cached)
        try f.expectOK(["snapshots", "acme"])
        // Damage in the store is found even though the cache holds a good copy.
        let store = try f.store()
        let key = try #require(try store.list(prefix: "tenants/acme/snapshots/").first?.key)
        var bytes = try store.get(key)
        bytes[bytes.count / 2] ^= 0x10
        try store.put(key, bytes)
        let r = try f.tresor.run(["--json", "check", "acme"])
        #expect(r.code == 3, "\(r.stdout) \(r.stderr)")
        let damaged = try #require(try Self.report(r)["damagedSnapshots"] as? [[String: Any]])
        #expect(damaged.compactMap { $0["key"] as? String } == [key])
    }
}
