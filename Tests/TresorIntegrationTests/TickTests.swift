import Foundation
import Testing
import TresorTestSupport

/// `tresor tick`: what is due runs once per slot, a missed stretch runs once, a held lock is
/// left to its holder.
@Suite struct TickTests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 5; o.largeFiles = 0; return o
    }()

    func tick(_ f: Fixture, at now: String, code: Int32) throws -> [[String: Any]] {
        let r = try f.tresor.run(["tick", "--json", "--now", now])
        #expect(r.code == code, "tick at \(now) exited \(r.code): \(r.stderr) \(r.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
        #expect((object["notYetScheduled"] as? [String]) == [])
        return try #require(object["jobs"] as? [[String: Any]])
    }

    func names(_ jobs: [[String: Any]]) -> [String] {
        jobs.map { "\($0["kind"] as? String ?? "?") \($0["tenant"] as? String ?? $0["store"] as? String ?? "-") \($0["result"] as? String ?? "?")" }
    }

    func runCount(_ f: Fixture, kind: String, tenant: String) throws -> Int {
        let r = try f.expectOK(["jobs", "--json", "--tenant", tenant])
        let runs = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        return runs.filter { $0["kind"] as? String == kind && $0["result"] as? String == "ok" }.count
    }

    @Test func aDailyJobRunsOncePerDayAndOnceAfterAnOutageNotOncePerMissedDay() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["store", "add", "off", "--url", "file://" + f.dir.sub("off").path, "--region", "eu-central"])
        try f.expectOK(["tenant", "add", "beta", "--region", "eu-central", "--store", "local", "--offsite", "off", "--docs", f.docs.path])

        // No drill ever passed: the drill-age control finds a problem (exit 3), every day.
        let first = try tick(f, at: "2026-11-20T00:05:00Z", code: 3)
        #expect(
            Set(names(first)) == [
                "docs-backup acme ok", "docs-backup beta ok", "replicate beta ok",
                "retention acme ok", "retention beta ok",
                "drill-control - problem_found", "store-clean local ok", "store-clean off ok",
            ])
        #expect(try tick(f, at: "2026-11-20T00:10:00Z", code: 0).isEmpty)
        #expect(try tick(f, at: "2026-11-20T23:55:00Z", code: 0).isEmpty)
        // Three days down; then one of each, not three.
        let after = try tick(f, at: "2026-11-23T09:00:00Z", code: 3)
        #expect(Set(names(after)) == Set(names(first)))
        #expect(try tick(f, at: "2026-11-23T09:05:00Z", code: 0).isEmpty)
        #expect(try runCount(f, kind: "docs-backup", tenant: "acme") == 2)
        #expect(try runCount(f, kind: "replicate", tenant: "beta") == 2)
        #expect(try runCount(f, kind: "retention", tenant: "beta") == 2)
    }

    @Test func aTenantPastItsDeadlineIsDeletedOnceByTickThenSweptAndNoLongerBackedUp() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["tenant", "add", "gone", "--region", "eu-central", "--store", "local", "--docs", f.docs.path])
        // Its 90 days run out on 2026-11-21 at noon.
        try f.expectOK(["tenant", "end-contract", "gone", "--date", "2026-08-23T12:00:00Z"])
        let first = try tick(f, at: "2026-11-20T00:05:00Z", code: 3)
        #expect(names(first).contains("docs-backup gone ok"))
        #expect(!names(first).contains { $0.hasPrefix("deletion") || $0.hasPrefix("sweep") }, "\(names(first))")

        let due = try tick(f, at: "2026-11-21T12:05:00Z", code: 3)
        let dueNames = names(due)
        #expect(dueNames.contains("deletion - ok") && dueNames.contains("sweep - ok"), "\(dueNames)")
        #expect(!dueNames.contains { $0.hasSuffix(" gone ok") && !$0.hasPrefix("deletion") }, "\(dueNames)")
        let list = try f.expectOK(["tenant", "list"])
        #expect(!list.stdout.contains("gone") && list.stdout.contains("acme"), "\(list.stdout)")
        // The next ticks neither delete nor sweep again, nor back the tenant up.
        let later = try tick(f, at: "2026-11-22T00:05:00Z", code: 3)
        #expect(!names(later).contains { $0.contains("gone") || $0.hasPrefix("deletion") || $0.hasPrefix("sweep") }, "\(names(later))")
    }

    @Test func aTenantWhoseLockIsHeldIsLeftToItsHolderAndRunsOnTheNextTick() throws {
        let f = try Fixture(corpus: Self.small)
        try FileManager.default.createDirectory(atPath: f.home + "/locks", withIntermediateDirectories: true)
        let holder = Process()
        // One process that holds the tenant's flock until its standard input closes.
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = [
            "python3", "-c",
            """
            import fcntl, sys
            f = open(sys.argv[1], "w"); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("held", flush=True); sys.stdin.read()
            """, f.home + "/locks/acme.lock",
        ]
        let out = Pipe(), input = Pipe()
        holder.standardOutput = out
        holder.standardInput = input
        try holder.run()
        func release() {
            try? input.fileHandleForWriting.close()  // a second close after release() changes nothing
            holder.waitUntilExit()
        }
        defer { release() }
        #expect(String(decoding: out.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("held"))  // printed after the flock

        let held = try tick(f, at: "2026-11-20T00:05:00Z", code: 3)
        #expect(names(held).contains("docs-backup acme locked"), "\(names(held))")
        #expect(try runCount(f, kind: "docs-backup", tenant: "acme") == 0)

        release()
        let next = try tick(f, at: "2026-11-20T00:10:00Z", code: 0)
        #expect(names(next) == ["docs-backup acme ok", "retention acme ok"])
    }
}
