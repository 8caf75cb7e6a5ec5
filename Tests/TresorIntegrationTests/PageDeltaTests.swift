import Foundation
import Testing
import TresorTestSupport

/// Base backups store what changed, by page, and stay whole backups each.
@Suite(.serialized) struct PageDeltaTests {
    /// Bytes of packs in the tenant's store and their names, from a listing of the store
    /// directory (not from anything Tresor reports).
    static func packs(_ f: PostgresFixture) throws -> [String: Int] {
        let root = f.storePath + "/tenants/acme/data"
        var out: [String: Int] = [:]
        guard FileManager.default.fileExists(atPath: root) else { return out }  // no pack yet
        for dir in try FileManager.default.contentsOfDirectory(atPath: root) {
            for name in try FileManager.default.contentsOfDirectory(atPath: root + "/" + dir) where !name.hasPrefix(".") {
                let size = try FileManager.default.attributesOfItem(atPath: root + "/" + dir + "/" + name)[.size] as? Int ?? 0
                out[dir + "/" + name] = size
            }
        }
        return out
    }

    @Test func aFewScatteredRowUpdatesDoNotStoreTheWholeTableAgainAndEachBackupStaysWhole() throws {
        let f = try PostgresFixture()
        // The default policy's 512 KiB chunks (the test policy's are smaller): a chunk holds 64
        // pages, so storing by chunk would store every chunk again below.
        try "[postgres]\nrelation_chunk_bytes = 524288\n".write(toFile: f.home + "/policies/zz-test.toml", atomically: true, encoding: .utf8)
        // About 2,300 pages of poorly compressible rows; hint bits and the visibility map set, so
        // reading the table later changes no page.
        try f.cluster.sql(
            "CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) AS filler FROM generate_series(1, 120000) g")
        try f.cluster.sql("VACUUM (FREEZE) t")
        try f.cluster.sql("CHECKPOINT")
        let before = try Self.packs(f)
        let first = try #require(try f.expectOK(["--json", "pg", "basebackup", "acme"]).json())
        let afterFirst = try Self.packs(f)
        let firstBytes = afterFirst.filter { before[$0.key] == nil }.values.reduce(0, +)

        // One row in 1,000: one page in about 20, in every 64-page chunk.
        try f.cluster.sql("UPDATE t SET filler = upper(filler) WHERE id % 1000 = 0")
        try f.cluster.sql("CHECKPOINT")
        let want = try f.cluster.sql("SELECT md5(string_agg(filler, ',' ORDER BY id)) FROM t")
        let second = try #require(try f.expectOK(["--json", "pg", "basebackup", "acme"]).json())
        let afterSecond = try Self.packs(f)
        let secondBytes = afterSecond.filter { afterFirst[$0.key] == nil }.values.reduce(0, +)
        #expect(firstBytes > 3_000_000, "the first base backup stored \(firstBytes) bytes")
        #expect(secondBytes * 8 < firstBytes, "the second base backup stored \(secondBytes) bytes, the first \(firstBytes)")
        #expect((second["pagesReused"] as? Int ?? 0) > 2000, "\(second)")
        #expect((first["pagesReused"] as? Int) == 0, "\(first)")

        // The second backup restores by itself, and the repository checks.
        try f.expectOK(["check", "acme", "--read-data"])
        try f.cluster.sql("INSERT INTO marker VALUES (1, clock_timestamp())")
        try f.cluster.switchAndWaitForArchive()
        try f.cluster.stop()
        let (restored, markers) = try f.restoreAndStart(["--latest"])
        #expect(markers == [1])
        #expect(try restored.sql("SELECT md5(string_agg(filler, ',' ORDER BY id)) FROM t") == want)
        try restored.stop()

        // A pack the first backup wrote holds pages the second still uses: losing it breaks
        // both, and check says so (exit 3) for the second too.
        let secondID = try #require(second["snapshot"] as? String)
        let firstID = try #require(first["snapshot"] as? String)
        let shared = try #require(afterFirst.filter { before[$0.key] == nil }.max { $0.value < $1.value }?.key)
        try FileManager.default.removeItem(atPath: f.storePath + "/tenants/acme/data/" + shared)
        let check = try f.tresor.run(["--json", "check", "acme"])
        #expect(check.code == 3, "check exited \(check.code): \(check.stdout) \(check.stderr)")
        let affected = try #require((check.json()?["tenants"] as? [String: [String: Any]])?["acme"]?["affected"] as? [String: Any])
        #expect(affected[secondID] != nil && affected[firstID] != nil, "\(affected.keys)")
    }
}
