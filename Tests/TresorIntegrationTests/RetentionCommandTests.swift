import Foundation
import Testing
import TresorTestSupport

/// `tresor retention plan|apply` on a real local store, with the clock moved by `--now`.
@Suite(.serialized) struct RetentionCommandTests {
    static let day0 = 1_790_000_000 - 1_790_000_000 % 86_400  // a UTC midnight in 2026

    static func time(day: Int, hour: Int = 12) -> String { "@\(day0 + day * 86_400 + hour * 3600)" }

    /// 200 KiB no compressor shrinks, different for each day.
    static func dayFile(_ day: Int) -> Data {
        var state = UInt64(day + 1) &* 0x9E37_79B9_7F4A_7C15
        var out = [UInt8](repeating: 0, count: 200 << 10)
        for i in out.indices {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            out[i] = UInt8(truncatingIfNeeded: state)
        }
        return Data(out)
    }

    static func small() -> CorpusBuilder.Options {
        var o = CorpusBuilder.Options()
        o.smallFiles = 40
        o.largeFiles = 0
        return o
    }

    /// Backs up `days` days, each with its own `day-N.bin` (gone the next day), and returns the
    /// snapshot id per day.
    func backupDays(_ f: Fixture, days: Int) throws -> [String] {
        var ids: [String] = []
        for d in 0..<days {
            let file = f.docs.appendingPathComponent("day.bin")
            try Self.dayFile(d).write(to: file)
            let r = try f.expectOK(["--json", "--now", Self.time(day: d), "docs", "backup", "acme"])
            ids.append(try #require((r.json()?["snapshot"] as? [String: Any])?["id"] as? String))
        }
        return ids
    }

    func storeBytes(_ f: Fixture, under: String) -> Int {
        let root = f.storePath + "/tenants/acme/" + under
        let e = FileManager.default.enumerator(atPath: root)
        var total = 0
        while let p = e?.nextObject() as? String {
            total += ((try? FileManager.default.attributesOfItem(atPath: root + "/" + p))?[.size] as? Int) ?? 0
        }
        return total
    }

    func storeListing(_ f: Fixture) -> [String] {
        let e = FileManager.default.enumerator(atPath: f.storePath)
        var out: [String] = []
        while let p = e?.nextObject() as? String { out.append(p) }
        return out.sorted()
    }

    @Test func applyKeepsEveryDailySnapshotRestorableAndDeletesPacksOnlyDroppedDaysNeeded() throws {
        let f = try Fixture(corpus: Self.small())
        let ids = try backupDays(f, days: 40)
        // Day 0's pack holds the corpus every snapshot needs and day 0's file (about a third of
        // it): with a 20 % threshold it is repacked, so all 9 dropped day files go.
        try "[store]\nrepack_garbage_percent = 20\n".write(toFile: f.home + "/policies/zz-repack.toml", atomically: true, encoding: .utf8)
        let dataBefore = storeBytes(f, under: "data")
        let now = Self.time(day: 39, hour: 20)
        let r = try f.expectOK(["--json", "--now", now, "retention", "apply", "acme"])
        let result = try #require(r.jsonArray()?.first, "\(r.stdout)")
        let stores = try #require(result["stores"] as? [[String: Any]])
        #expect((stores.first?["prune"] as? [String: Any])?["snapshotsDeleted"] as? Int == 9)

        // Days 0…8 are past the 31 daily snapshots kept: their day files are gone from the store
        // (9 × 200 KiB of incompressible bytes), everything else restores.
        let freed = dataBefore - storeBytes(f, under: "data")
        #expect(freed >= 9 * (200 << 10), "only \(freed) bytes of packs freed")
        #expect(((stores.first?["prune"] as? [String: Any])?["packsRepacked"] as? Int ?? 0) >= 1)
        for (d, id) in ids.enumerated() {
            let (restored, rr) = try f.restore(id)
            if d < 9 {
                #expect(rr.code != 0, "snapshot of day \(d) still restores")
            } else {
                #expect(rr.code == 0, "day \(d): \(rr.stderr)")
                #expect(try Data(contentsOf: restored.appendingPathComponent("day.bin")) == Self.dayFile(d), "day \(d)")
            }
        }
        try f.expectOK(["check", "acme", "--read-data"])
        let evidence = try f.expectOK(["evidence", "list", "--kind", "retention"])
        #expect(evidence.stdout.contains("retention"), "\(evidence.stdout)")
        // A second run finds nothing more to delete.
        let again = try #require(try f.expectOK(["--json", "--now", now, "retention", "apply", "acme"]).jsonArray()?.first)
        #expect(((again["stores"] as? [[String: Any]])?.first?["prune"] as? [String: Any])?["packsDeleted"] as? Int == 0)
    }

    @Test func dryRunPrintsBytesToFreeAndChangesNothing() throws {
        let f = try Fixture(corpus: Self.small())
        let ids = try backupDays(f, days: 34)
        // A reader of day 0's snapshot (this test process) pins it: retention must keep it.
        let pins = URL(fileURLWithPath: f.home + "/pins/acme")
        try FileManager.default.createDirectory(at: pins, withIntermediateDirectories: true)
        try Data().write(to: pins.appendingPathComponent("\(ids[0]).\(getpid())"))
        let before = storeListing(f)
        let r = try f.expectOK(["--json", "--now", Self.time(day: 33, hour: 20), "retention", "apply", "acme", "--dry-run"])
        let result = try #require(r.jsonArray()?.first, "\(r.stdout)")
        let plan = try #require(result["plan"] as? [String: Any])
        let kept = (plan["keepSnapshots"] as? [[String: Any]] ?? []).map { $0["item"] as? String }
        let dropped = (plan["dropSnapshots"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
        #expect(kept.contains(ids[0]))
        #expect(Set(dropped) == [ids[1], ids[2]])
        let planned = try #require(try f.expectOK(["--json", "--now", Self.time(day: 33, hour: 20), "retention", "plan", "acme"]).json())
        let planDrops = ((planned["acme"] as? [String: Any])?["dropSnapshots"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
        #expect(Set(planDrops) == [ids[1], ids[2]])
        let bytes = try #require(result["bytesToFree"] as? [String: Any])
        #expect((bytes["packs"] as? Int ?? 0) >= 2 * (200 << 10))
        #expect(storeListing(f) == before)
        let evidence = try f.tresor.run(["evidence", "list", "--kind", "retention"])
        #expect(!evidence.stdout.contains("\"retention\"") && !evidence.stdout.contains(" retention "), "\(evidence.stdout)")
    }

    /// Every file of the store by path, with its bytes.
    func storeContents(_ f: Fixture) throws -> [String: Data] {
        let e = FileManager.default.enumerator(atPath: f.storePath)
        var out: [String: Data] = [:]
        while let p = e?.nextObject() as? String {
            let path = f.storePath + "/" + p
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            out[p] = try Data(contentsOf: URL(fileURLWithPath: path))
        }
        return out
    }

    /// `--dry-run` runs the real path over a DryRunStore: the store stays byte for byte as it
    /// was, and what the DryRunStore held back is exactly what the real run then does to it.
    @Test func dryRunLeavesTheStoreByteIdenticalAndHoldsBackWhatTheRealRunDoes() throws {
        let f = try Fixture(corpus: Self.small())
        _ = try backupDays(f, days: 34)
        let now = Self.time(day: 33, hour: 20)
        let before = try storeContents(f)
        let dry = try #require(try f.expectOK(["--json", "--now", now, "retention", "apply", "acme", "--dry-run"]).jsonArray()?.first)
        #expect(try storeContents(f) == before, "the dry run changed the store")
        let dropped = ((dry["plan"] as? [String: Any])?["dropSnapshots"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
        #expect(!dropped.isEmpty)
        let store = try #require((dry["stores"] as? [[String: Any]])?.first)
        let prune = try #require(store["prune"] as? [String: Any], "\(store)")
        #expect(prune["snapshotsDeleted"] as? Int == dropped.count)
        let held = try #require(store["heldBack"] as? [String: Any], "\(store)")
        let deletes = try #require(held["deletes"] as? Int)
        let puts = try #require(held["puts"] as? Int)
        #expect(deletes >= dropped.count + (prune["packsDeleted"] as? Int ?? 0))

        let real = try #require(try f.expectOK(["--json", "--now", now, "retention", "apply", "acme"]).jsonArray()?.first)
        #expect((real["stores"] as? [[String: Any]])?.first?["heldBack"] == nil, "a real run reports nothing held back")
        let after = try storeContents(f)
        #expect(Set(before.keys).subtracting(after.keys).count == deletes)
        #expect(Set(after.keys).subtracting(before.keys).count == puts)
        for id in dropped {
            #expect(before.keys.contains { $0.hasSuffix("snapshots/" + id) } && !after.keys.contains { $0.hasSuffix("snapshots/" + id) }, "\(id)")
        }
    }

    @Test func backupRunningDuringApplyCompletesAndRestores() throws {
        let f = try Fixture(corpus: Self.small())
        _ = try backupDays(f, days: 33)
        // A large new file so the backup holds the tenant's lock for a while.
        try Data(repeating: 7, count: 1).write(to: f.docs.appendingPathComponent("marker"))
        var big = [UInt8](repeating: 0, count: 48 << 20)
        for i in stride(from: 0, to: big.count, by: 4096) { big[i] = UInt8(truncatingIfNeeded: i >> 12) }
        try Data(big).write(to: f.docs.appendingPathComponent("big.bin"))
        let backup = f.tresor.start(["--now", Self.time(day: 33, hour: 21), "docs", "backup", "acme"])
        backup.standardOutput = FileHandle.nullDevice
        try backup.run()
        waitUntilLockHeld(home: f.home, by: backup)
        let retention = try f.tresor.run(["--now", Self.time(day: 33, hour: 22), "retention", "apply", "acme"])
        backup.waitUntilExit()
        #expect(backup.terminationStatus == 0)
        #expect(retention.code == 0, "\(retention.stderr)")
        let (restored, r) = try f.restore("latest")
        #expect(r.code == 0, "\(r.stderr)")
        #expect(TreeComparer.differences(f.docs, restored) == [])
        try f.expectOK(["check", "acme", "--read-data"])
    }

    @Test func unreachableOffsiteStoreLeavesPrimaryPrunedAndExitsOneNamingIt() throws {
        let f = try Fixture(corpus: Self.small())
        let offsite = f.dir.sub("offsite").path
        try f.expectOK(["store", "add", "far", "--url", "file://" + offsite, "--region", "eu-central"])
        try f.expectOK(["tenant", "add", "beta", "--region", "eu-central", "--store", "local", "--offsite", "far", "--docs", f.docs.path])
        for d in 0..<33 {
            try Self.dayFile(d).write(to: f.docs.appendingPathComponent("day.bin"))
            try f.expectOK(["--now", Self.time(day: d), "docs", "backup", "beta"])
        }
        try f.expectOK(["replicate", "beta"])
        func snapshotCount(_ extra: [String]) throws -> Int {
            let out = try f.expectOK(["--json", "snapshots", "beta"] + extra).stdout
            return out.components(separatedBy: "\"kind\"").count - 1
        }
        // Reachable: both stores pruned alike (day 32 is after this `now`, day 0 goes).
        try f.expectOK(["--now", Self.time(day: 31, hour: 20), "retention", "apply", "beta"])
        #expect(try snapshotCount([]) == 32)
        #expect(try snapshotCount(["--store", "far"]) == 32)
        try f.expectOK(["check", "beta", "--store", "far", "--read-data"])
        // The offsite store's directory becomes a plain file: every request to it fails.
        try FileManager.default.removeItem(atPath: offsite)
        try Data("not a store".utf8).write(to: URL(fileURLWithPath: offsite))
        let r = try f.tresor.run(["--now", Self.time(day: 32, hour: 20), "retention", "apply", "beta"])
        #expect(r.code == 1, "\(r.code): \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("far"), "\(r.stderr)")
        let snapshots = try f.expectOK(["--json", "snapshots", "beta"])
        #expect(snapshots.stdout.components(separatedBy: "\"kind\"").count - 1 == 31, "\(snapshots.stdout)")
    }
}
