import Foundation
import Testing
import TresorTestSupport

/// Fleet mode: several `tick` workers, each with its own home (same keys, same stores), sharing
/// one PostgreSQL catalog that the first home was migrated to with `tresor catalog migrate`.
@Suite struct FleetTests {
    static let tenants = (1...20).map { String(format: "t%02d", $0) }

    /// Home A with 20 tenants of one tiny file each, moved to a fresh PostgreSQL catalog, with a
    /// 3-second lease; homes B and C copies of it.
    final class Fleet: @unchecked Sendable {
        let dir = TempDirectory("tresor-fleet")
        let cluster: ScratchCluster
        let database: String
        var homes: [TresorProcess] = []

        init() throws {
            cluster = try ScratchCluster.shared()
            database = try cluster.freshDatabase(prefix: "fleet").name
            let a = TresorProcess(home: dir.sub("a").path)
            func ok(_ args: [String]) throws {
                let r = try a.run(args)
                #expect(r.code == 0, "tresor \(args.joined(separator: " ")): \(r.code) \(r.stderr)")
            }
            try ok(["init"])
            try ok(["store", "add", "local", "--url", "file://" + dir.sub("store").path, "--region", "eu-central"])
            for t in FleetTests.tenants {
                let docs = dir.sub("docs-\(t)")
                try FileManager.default.createDirectory(at: docs, withIntermediateDirectories: true)
                try Data("tenant \(t)\n".utf8).write(to: docs.appendingPathComponent("note.txt"))
                try ok(["tenant", "add", t, "--region", "eu-central", "--store", "local", "--docs", docs.path])
            }
            try ok(["catalog", "migrate", "--from", "sqlite", "--to", "postgresql://postgres@127.0.0.1:\(cluster.port)/\(database)"])
            let config = dir.sub("a").appendingPathComponent("tresor.toml")
            let h = try FileHandle(forWritingTo: config)
            try h.seekToEnd()
            try h.write(contentsOf: Data("\n[fleet]\nlease = \"3s\"\n".utf8))
            try h.close()
            homes = [a]
            for name in ["b", "c"] {
                let copy = Process()
                copy.executableURL = URL(fileURLWithPath: "/bin/cp")
                copy.arguments = ["-a", dir.sub("a").path, dir.sub(name).path]
                try copy.run()
                copy.waitUntilExit()
                #expect(copy.terminationStatus == 0)
                homes.append(TresorProcess(home: dir.sub(name).path))
            }
        }

        deinit { _ = try? cluster.sql("DROP DATABASE \(database) WITH (FORCE)") }

        func sql(_ query: String) throws -> [String] {
            try cluster.sql(query, database: database).split(separator: "\n").map(String.init)
        }

        /// Runs one tick per home at once; returns their results.
        func tickAll(at now: String) -> [TresorProcess.Result?] {
            final class Results: @unchecked Sendable {
                let lock = NSLock()
                var values: [TresorProcess.Result?]
                init(_ n: Int) { values = Array(repeating: nil, count: n) }
            }
            let results = Results(homes.count)
            let homes = self.homes
            DispatchQueue.concurrentPerform(iterations: homes.count) { i in
                // A worker that cannot even start is a nil result, which the caller's check reports.
                let r = try? homes[i].run(["tick", "--json", "--now", now])
                results.lock.lock()
                results.values[i] = r
                results.lock.unlock()
            }
            return results.values
        }
    }

    @Test func threeWorkersOnOneCatalogRunEveryDueJobExactlyOnce() throws {
        let fleet = try Fleet()
        let day = "2026-11-20T00:05:00Z"
        for (i, r) in fleet.tickAll(at: day).enumerated() {
            // 3: the drill-age control finds no passing drill, whichever worker ran it.
            #expect(r?.code == 0 || r?.code == 3, "worker \(i): \(r?.code ?? -1) \(r?.stderr ?? "")")
        }
        // Every job due that day ran once in the whole fleet: one run row each, and it ended ok.
        let runs = try fleet.sql(
            """
            SELECT kind || ' ' || COALESCE(tenant, '-') || ' ' || status FROM runs WHERE kind <> 'tick' ORDER BY 1
            """)
        let expected =
            FleetTests.tenants.map { "docs-backup \($0) ok" } + FleetTests.tenants.map { "retention \($0) ok" }
            + ["drill-control - problem_found", "store-clean - ok"]
        #expect(runs == expected.sorted())
        // The run rows name the workers: each is a tick that the catalog saw start and end.
        #expect(try fleet.sql("SELECT count(*) FROM runs WHERE kind = 'tick' AND status <> 'running'") == ["3"])
    }

    @Test func aWorkerKilledMidJobLeavesItsJobsToAnotherAfterTheLease() throws {
        let fleet = try Fleet()
        let day = "2026-11-21T00:05:00Z"
        // Worker A claims jobs and then holds them (test hook) until it is killed.
        var a = fleet.homes[0]
        a.environment["TRESOR_TEST_HOLD_AFTER_CLAIM"] = "600"
        let doomed = a.start(["tick", "--json", "--now", day])
        doomed.standardOutput = FileHandle.nullDevice
        doomed.standardError = FileHandle.nullDevice
        try doomed.run()
        let worker = "%:\(doomed.processIdentifier)"
        var held: [String] = []
        for _ in 0..<600 where held.isEmpty {
            held = try fleet.sql("SELECT owner FROM job_leases WHERE worker LIKE '\(worker)' AND owner LIKE 'tick-docs-backup-%' AND expires_ms > 0")
            if held.isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        }
        try #require(!held.isEmpty, "worker A never claimed a job")
        kill(doomed.processIdentifier, SIGKILL)
        doomed.waitUntilExit()
        #expect(try fleet.sql("SELECT count(*) FROM runs WHERE kind = 'docs-backup'") == ["0"])

        // B and C tick until every tenant is backed up: A's jobs only once its leases ran out.
        var rounds = 0
        while try fleet.sql("SELECT count(DISTINCT tenant) FROM runs WHERE kind = 'docs-backup' AND status = 'ok'") != ["20"], rounds < 20 {
            rounds += 1
            _ = Array(fleet.homes.dropFirst()).map { try? $0.run(["tick", "--json", "--now", day]) }
            Thread.sleep(forTimeInterval: 1)
        }
        let runs = try fleet.sql("SELECT tenant || ' ' || status || ' ' || (worker LIKE '\(worker)') FROM runs WHERE kind = 'docs-backup' ORDER BY 1")
        #expect(runs == FleetTests.tenants.map { "\($0) ok false" })
        for tenant in held {
            let leases = try fleet.sql("SELECT worker LIKE '\(worker)' FROM job_leases WHERE owner = '\(tenant)' AND job = 'lock'")
            #expect(leases == ["f"], "\(tenant)'s lease still names the killed worker")
        }
    }
}
