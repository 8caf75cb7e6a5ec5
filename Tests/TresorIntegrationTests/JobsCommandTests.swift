import Foundation
import Testing
import TresorTestSupport

/// `tresor jobs`: the recorded runs, as an operator reads them after a bad night.
@Suite struct JobsCommandTests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 10; o.largeFiles = 0; return o
    }()

    func runs(_ f: Fixture, _ args: [String]) throws -> [[String: Any]] {
        let r = try f.expectOK(["jobs", "--json"] + args)
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stdout)")
    }

    @Test func aFailedBackupIsListedWithItsErrorWorkerAndTheGoodOneWithItsBytes() throws {
        let f = try Fixture(corpus: Self.small)
        let good = try f.expectOK(["docs", "backup", "acme", "--json", "--now", "2026-11-20T10:00:00Z"])
        let goodJSON = try #require(try JSONSerialization.jsonObject(with: Data(good.stdout.utf8)) as? [String: Any])
        let bytesRead = try #require(goodJSON["bytesRead"] as? Int)
        // The store becomes a plain file: the next backup cannot open its repository.
        try FileManager.default.removeItem(atPath: f.storePath)
        try "not a store".write(toFile: f.storePath, atomically: true, encoding: .utf8)
        let bad = try f.tresor.run(["docs", "backup", "acme", "--now", "2026-11-25T10:00:00Z"])
        #expect(bad.code == 2, "\(bad.stderr)")

        let all = try runs(f, [])
        #expect(all.count == 2)
        #expect(all.map { $0["result"] as? String } == ["failed", "ok"])
        #expect(all.map { $0["kind"] as? String } == ["docs-backup", "docs-backup"])
        #expect(all.map { $0["tenant"] as? String } == ["acme", "acme"])
        #expect(all[0]["startedAt"] as? String == "2026-11-25T10:00:00.000Z")
        #expect((all[0]["error"] as? String)?.isEmpty == false)
        #expect(all[1]["error"] == nil)
        #expect(all[1]["bytes"] as? Int == bytesRead)
        #expect(bytesRead > 0)
        for run in all {
            #expect((run["worker"] as? String)?.hasPrefix(ProcessInfo.processInfo.hostName + ":") == true, "\(run)")
        }

        #expect(try runs(f, ["--failed"]).map { $0["result"] as? String } == ["failed"])
        #expect(try runs(f, ["--since", "2026-11-22"]).map { $0["result"] as? String } == ["failed"])
        #expect(try runs(f, ["--since", "3d", "--now", "2026-11-26T00:00:00Z"]).count == 1)
        #expect(try runs(f, ["--tenant", "nobody"]).isEmpty)

        let text = try f.expectOK(["jobs"])
        #expect(text.stdout.split(separator: "\n").count == 2)
        #expect(text.stdout.contains("error: "))
    }

    @Test func anUnreadableSinceIsAUsageError() throws {
        let f = try Fixture(corpus: Self.small)
        let r = try f.tresor.run(["jobs", "--since", "last tuesday"])
        #expect(r.code == 2)
        #expect(r.stderr.contains("error: cannot read --since 'last tuesday'"), "\(r.stderr)")
    }
}
