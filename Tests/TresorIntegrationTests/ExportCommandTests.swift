import Foundation
import Testing
import TresorTestSupport

@Suite("tresor export", .serialized)
struct ExportCommandTests {
    @Test("tresor export writes a bag bagit.py accepts and a signed evidence record with the archive's SHA-256")
    func exportWithoutEvidenceOrValidBag() throws {
        let cluster = try ScratchCluster(label: "export-cli")
        try cluster.start()
        try cluster.sql("CREATE TABLE notes (id int, body text); INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g")
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 200; o.largeFiles = 1; return o
            }())
        try f.expectOK(["tenant", "add", "shop", "--region", "eu-central", "--store", "local", "--docs", f.docs.path, "--pg", cluster.dsn])
        let out = f.dir.sub("shop.tar.zst").path
        let r = try f.expectOK(["--json", "export", "shop", "--out", out, "--by", "auditor-7"])
        let sha = try ScratchCluster.run("/usr/bin/sha256sum", [out], asPostgres: false).prefix(64)
        #expect(r.json()?["sha256"] as? String == String(sha))

        let bag = f.dir.sub("unpacked")
        try FileManager.default.createDirectory(at: bag, withIntermediateDirectories: true)
        try ScratchCluster.run("/usr/bin/tar", ["--zstd", "-xf", out, "-C", bag.path], asPostgres: false)
        let validate = try ScratchCluster.run("/bin/bash", ["-c", "bagit.py --validate '\(bag.path)/shop' 2>&1"], asPostgres: false)
        #expect(validate.contains("is valid"), "\(validate)")
        let csv = try String(contentsOf: bag.appendingPathComponent("shop/data/database/tables/public.notes.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 101)

        let list = try f.expectOK(["--json", "evidence", "list", "--kind", "export", "--tenant", "shop"])
        let entries = list.json()?["entries"] as? [[String: Any]] ?? []
        #expect(entries.count == 1)
        let payload = entries.first?["payload"] as? [String: Any] ?? [:]
        #expect(payload["archive_sha256"] as? String == String(sha))
        #expect(payload["by"] as? String == "auditor-7")
        let size = try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int
        #expect(payload["archive_bytes"] as? Int == size)
        #expect(payload["database_rows"] as? Int == 100)
        try f.expectOK(["evidence", "verify"])

        // The same name again: refused, and the first archive and the log are untouched.
        let again = try f.tresor.run(["export", "shop", "--out", out])
        #expect(again.code == 2, "\(again.stderr)")
        let shaAfter = try ScratchCluster.run("/usr/bin/sha256sum", [out], asPostgres: false).prefix(64)
        #expect(shaAfter == sha)
    }

    @Test(
        "export options that cannot apply exit 2 with a clear message, before anything is written",
        arguments: [["--since", "abc123"], ["--from-backup"], ["--at", "2026-11-01T00:00:00Z"], ["--from-backup", "--at", "yesterday"], []])
    func exportOptionThatIsSilentlyIgnored(extra: [String]) throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 5; o.largeFiles = 0; return o
            }())
        let out = f.dir.sub(extra.isEmpty ? "acme.rar" : "acme.tar").path
        let r = try f.tresor.run(["export", "acme", "--out", out] + extra)
        #expect(r.code == 2, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("error: "), "\(r.stderr)")
        // No snapshot yet for --since and --from-backup; --at alone is live; a time that is none.
        let expected =
            extra.isEmpty
            ? "archive format"
            : extra == ["--at", "2026-11-01T00:00:00Z"]
                ? "--at needs --from-backup"
                : extra.last == "yesterday" ? "cannot read time" : "has no backups"
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(r.stderr.contains("hint: "))
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
