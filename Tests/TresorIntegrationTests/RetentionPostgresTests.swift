import Foundation
import Testing
import TresorTestSupport

/// `tresor retention apply` on a real PostgreSQL 15 cluster archiving through the binary: the
/// moments of the window restore with `pg restore` afterwards, what only older moments needed is
/// gone, and a base backup running during the apply (it holds the tenant's lock, apply waits)
/// completes and restores while the cluster keeps archiving WAL (`wal-push` takes no lock).
@Suite(.serialized) struct RetentionPostgresTests {
    static func date(_ text: String) throws -> Date {
        let plain = ISO8601DateFormatter()
        return try #require(ISO8601DateFormatter.fractional.date(from: text) ?? plain.date(from: text), "\(text)")
    }

    /// Halfway between two markers' commit times.
    static func between(_ a: String?, _ b: String?) throws -> String {
        let da = try date(try #require(a)), db = try date(try #require(b))
        return ISO8601DateFormatter.fractional.string(from: da.addingTimeInterval(db.timeIntervalSince(da) / 2))
    }

    func dataBytes(_ f: PostgresFixture) -> Int {
        let root = f.storePath + "/tenants/acme/data"
        let e = FileManager.default.enumerator(atPath: root)
        var total = 0
        while let p = e?.nextObject() as? String {
            total += ((try? FileManager.default.attributesOfItem(atPath: root + "/" + p))?[.size] as? Int) ?? 0
        }
        return total
    }

    func walSegments(_ f: PostgresFixture) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: f.storePath + "/tenants/acme/wal/00000001").filter { $0.count == 24 }.sorted()
    }

    @Test func applyOnARealClusterKeepsEveryMomentOfTheWindowAndDropsOnlyWhatOlderMomentsNeeded() throws {
        let f = try PostgresFixture()
        // Repack packs that are more than a fifth garbage, so b1's dropped table leaves the store.
        try "[store]\nrepack_garbage_percent = 20\n".write(toFile: f.home + "/policies/zz-repack.toml", atomically: true, encoding: .utf8)
        // A table only the first base backup holds: ~25 MB of hex no compressor halves much further.
        try f.cluster.sql(
            "CREATE TABLE old_blob AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 200000) g")
        var at = try f.insertMarkers(1...3)
        try f.expectOK(["pg", "basebackup", "acme"])  // b1
        at.merge(try f.insertMarkers(4...6)) { a, _ in a }
        try f.cluster.sql("DROP TABLE old_blob")
        try f.cluster.sql("CHECKPOINT")
        let b2 = try #require(try f.expectOK(["--json", "pg", "basebackup", "acme"]).json()?["postgres"] as? [String: Any])
        let b2End = try Self.date(try #require(b2["endTime"] as? String))
        let b2StartWAL = try #require(b2["startWAL"] as? String)
        at.merge(try f.insertMarkers(7...10)) { a, _ in a }
        try f.cluster.switchAndWaitForArchive()

        // The window (30 days) starts exactly at b2's end: b2 is the newest base backup at or
        // before it, so b1 and every WAL segment before b2's start go.
        let now = "@\(Int(b2End.timeIntervalSince1970.rounded(.up)) + 30 * 86_400)"
        let segmentsBefore = try walSegments(f)
        #expect(segmentsBefore.contains { $0 < b2StartWAL }, "\(segmentsBefore) \(b2StartWAL)")
        let bytesBefore = dataBytes(f)

        // b3 runs and holds the tenant's lock; retention starts meanwhile and must wait for it,
        // while the cluster commits and archives more markers.
        // The window starts at b2's end rounded up to the second: a b3 that ended within that
        // second would itself be the newest base backup at or before the start (fast base
        // backups made that happen), so b3 starts only once the second has passed.
        let windowStart = Date(timeIntervalSince1970: b2End.timeIntervalSince1970.rounded(.up))
        while Date() <= windowStart { usleep(10_000) }
        let b3 = f.tresor.start(["pg", "basebackup", "acme"])
        b3.standardOutput = FileHandle.nullDevice
        try b3.run()
        waitUntilLockHeld(home: f.home, by: b3)
        let apply = f.tresor.start(["--json", "--now", now, "retention", "apply", "acme"])
        let applyOut = Pipe()
        apply.standardOutput = applyOut
        try apply.run()
        at.merge(try f.insertMarkers(11...14)) { a, _ in a }
        let applyJSON = applyOut.fileHandleForReading.readDataToEndOfFile()
        apply.waitUntilExit()
        b3.waitUntilExit()
        #expect(b3.terminationStatus == 0, "the base backup during retention failed")
        #expect(apply.terminationStatus == 0, "\(String(decoding: applyJSON, as: UTF8.self))")
        try f.cluster.switchAndWaitForArchive()

        let result = try #require((try JSONSerialization.jsonObject(with: applyJSON) as? [[String: Any]])?.first)
        let plan = try #require(result["plan"] as? [String: Any])
        #expect((plan["dropSnapshots"] as? [Any])?.count == 1, "\(plan)")
        #expect((plan["keepSnapshots"] as? [Any])?.count == 2, "b2 and b3 (waited for) are kept: \(plan)")
        #expect((plan["problems"] as? [Any])?.isEmpty == true, "\(plan)")

        // What only b1 and older moments needed is gone: its WAL and its table's packs.
        let segmentsAfter = try walSegments(f)
        #expect(!segmentsAfter.contains { $0 < b2StartWAL }, "\(segmentsAfter) before \(b2StartWAL)")
        #expect(segmentsAfter.contains(b2StartWAL))
        let freed = bytesBefore - dataBytes(f)
        #expect(freed > 8 << 20, "only \(freed) bytes of packs freed after dropping the base backup that held old_blob")
        let snapshots = try f.expectOK(["--json", "snapshots", "acme"]).stdout
        #expect(snapshots.components(separatedBy: "\"pg-base\"").count - 1 == 2, "\(snapshots)")
        try f.expectOK(["check", "acme", "--read-data"])

        // A moment before the window is no longer restorable; moments across it are, row for row.
        let early = try f.tresor.run([
            "pg", "restore", "acme", "--pgdata", f.dir.sub("early").path,
            "--target-time", try Self.between(at[4], at[5]),
        ])
        #expect(early.code == 2, "\(early.stderr)")
        try f.cluster.stop()
        for (target, expected) in [
            (try Self.between(at[8], at[9]), Array(1...8)),
            (try Self.between(at[12], at[13]), Array(1...12)),
        ] {
            let (restored, ids) = try f.restoreAndStart(["--target-time", target])
            #expect(ids == expected, "target \(target): \(ids)")
            try restored.stop()
        }
        let (latest, ids) = try f.restoreAndStart(["--latest"])
        #expect(ids == Array(1...14), "\(ids)")
        #expect(try latest.sql("SELECT count(*) FROM pg_class WHERE relname = 'old_blob'") == "0")
        try latest.stop()
    }
}
