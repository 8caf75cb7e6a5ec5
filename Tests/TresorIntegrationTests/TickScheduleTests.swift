import Foundation
import Testing
import TresorCatalog
import TresorCore
import TresorEngine
import TresorTestSupport

/// A clock the test moves.
final class SimulatedClock: Clock, @unchecked Sendable {
    private let instant: Locked<Date>
    init(_ start: Date) { instant = Locked(start) }
    func now() -> Date { instant.current }
    func set(_ d: Date) { instant.withLock { $0 = d } }
}

/// Runs nothing: records each job as an `ok` run at the clock's time, as the real jobs would,
/// and remembers what it was asked to run.
final class RecordingExecutor: TickExecutor, @unchecked Sendable {
    let calls = Locked<[(spec: TickJobSpec, at: Date)]>([])
    /// Called before a job is recorded (the test's stand-in for work another process does meanwhile).
    var before: (@Sendable (TickJobSpec, Installation) throws -> Void)?

    func run(_ job: TickJobSpec, in inst: Installation) throws -> Outcome {
        try before?(job, inst)
        let at = inst.clock.now()
        calls.withLock { $0.append((job, at)) }
        let id = try inst.catalog.startRun(kind: job.kind, tenant: job.tenant, at: at)
        let detail = job.store.map { #"{"store":"\#($0)"}"# } ?? "{}"
        try inst.catalog.finishRun(id: id, at: at, status: .ok, detail: detail)
        return .ok
    }
}

/// The schedule of `tick` over simulated time, with the real catalog, planner, claims and
/// concurrency, and a job double that only records runs.
@Suite struct TickScheduleTests {
    static let t0 = TimeFormat.parse("2027-03-01T00:00:00Z")!
    static let day = 86400.0

    /// A home with stores `local` and `off` and `count` tenants created at `created`, each with
    /// documents, a database and the offsite store; `policy` is added to the home's policies.
    static func home(tenants count: Int, created: Date, policy: String) throws -> (TempDirectory, Installation, SimulatedClock) {
        let dir = TempDirectory("tresor-tick")
        let tresor = TresorProcess(home: dir.sub("home").path)
        for args in [["init"], ["store", "add", "local", "--url", "file://" + dir.sub("store").path, "--region", "eu-central"],
                     ["store", "add", "off", "--url", "file://" + dir.sub("off").path, "--region", "eu-central"]] {
            let r = try tresor.run(args)
            try #require(r.code == 0, "\(args): \(r.stderr)")
        }
        try policy.write(to: dir.sub("home").appendingPathComponent("policies/zz-test.toml"), atomically: true, encoding: .utf8)
        let clock = SimulatedClock(created)
        let inst = try Installation.open(home: Home(root: dir.sub("home")), configFile: nil, clock: clock)
        for i in 1...count {
            let name = String(format: "t%02d", i)
            try inst.catalog.addTenant(TenantRecord(name: name, region: "eu-central", store: "local", offsiteStore: "off",
                                                    pgDSN: "host=/nonexistent dbname=\(name)", docRoots: ["/nonexistent/\(name)"],
                                                    createdAt: created))
        }
        return (dir, inst, clock)
    }

    static func dayIndex(_ d: Date) -> Int { Int((d.timeIntervalSince(t0) / day).rounded(.down)) }

    @Test func aSimulatedMonthRunsEachJobOncePerSlotSpreadsDrillsAndCatchesUpAnOutageOnce() throws {
        let (dir, inst, clock) = try Self.home(tenants: 20, created: Self.t0.addingTimeInterval(-3600), policy: """
            [drills]
            interval = "30d"
            [tick]
            concurrency = 4
            """)
        withExtendedLifetime(dir) {}
        // A 21st tenant's contract ended so that its deletion deadline (90 days) falls on day 5 at noon.
        try inst.catalog.addTenant(TenantRecord(name: "t21", region: "eu-central", store: "local", offsiteStore: "off",
                                                pgDSN: "host=/nonexistent dbname=t21", docRoots: ["/nonexistent/t21"],
                                                createdAt: Self.t0.addingTimeInterval(-200 * Self.day),
                                                contractEnd: Self.t0.addingTimeInterval((5.5 - 90) * Self.day)))

        let executor = RecordingExecutor()
        let outage = 10..<12  // days without any tick
        var ticks = 0
        for step in 0..<(30 * 288) {
            let now = Self.t0.addingTimeInterval(Double(step) * 300)
            if outage.contains(Self.dayIndex(now)) { continue }
            clock.set(now)
            let r = try inst.tick(executor: executor)
            #expect(r.failed == 0 && !r.jobs.contains { $0.result == .locked }, "\(r.jobs)")
            ticks += 1
        }
        #expect(ticks == 28 * 288)

        let calls = executor.calls.current
        // Nothing twice: per kind, owner and UTC day (sweeps: per 7-day slot) at most one run.
        var perSlot: [String: Int] = [:]
        for c in calls {
            let slot = c.spec.kind == .sweep ? Int(c.at.timeIntervalSince1970 / (7 * Self.day)) : Self.dayIndex(c.at)
            perSlot["\(c.spec) \(slot)", default: 0] += 1
        }
        #expect(perSlot.filter { $0.value > 1 }.isEmpty, "\(perSlot.filter { $0.value > 1 })")

        func days(_ kind: RunKind, _ owner: String) -> [Int] {
            calls.filter { $0.spec.kind == kind && $0.spec.owner == owner }.map { Self.dayIndex($0.at) }.sorted()
        }
        let everyDay = (0..<30).filter { !outage.contains($0) }
        for i in 1...20 {
            let t = String(format: "t%02d", i)
            #expect(days(.documentsBackup, t) == everyDay, "\(t)")
            #expect(days(.postgresBaseBackup, t) == everyDay, "\(t)")
            #expect(days(.replicate, t) == everyDay, "\(t)")
            #expect(days(.retention, t) == everyDay, "\(t)")
            #expect(days(.drill, t).count == 1, "\(t): \(days(.drill, t))")
        }
        // The catch-up after the outage is the first tick of day 12, once per job.
        let day12 = calls.filter { Self.dayIndex($0.at) == 12 }
        #expect(Set(day12.map(\.at)) == [Self.t0.addingTimeInterval(12 * Self.day)])
        #expect(day12.filter { $0.spec.kind == .documentsBackup }.count == 20)

        let drillDays = (1...20).flatMap { days(.drill, String(format: "t%02d", $0)) }
        #expect(Set(drillDays).count >= 10, "drills on days \(drillDays.sorted())")
        #expect(drillDays.filter { $0 == 0 }.count <= 3, "drills on days \(drillDays.sorted())")

        #expect(days(.drillControl, "") == everyDay)
        #expect(days(.storeClean, "local") == everyDay && days(.storeClean, "off") == everyDay)
        #expect(days(.deletion, "") == [5], "the deadline passed on day 5 at noon")
        // Past its deadline a tenant is no longer backed up (the double deleted nothing).
        #expect(days(.documentsBackup, "t21") == Array(0...5))
        let sweeps = days(.sweep, "")
        #expect(!sweeps.isEmpty && sweeps.allSatisfy { $0 >= 5 }, "\(sweeps)")
    }

    @Test func aSecondTickLeavesAJobAnotherHoldsAndSkipsOneDoneSinceItsPlan() throws {
        let (dir, inst, clock) = try Self.home(tenants: 3, created: Self.t0, policy: "[tick]\nconcurrency = 1\n")
        withExtendedLifetime(dir) {}
        clock.set(Self.t0.addingTimeInterval(300))
        // Another tick is backing up t01's documents: it holds that job's claim.
        let held = try inst.home.locker.acquire(TickJobSpec(.documentsBackup, tenant: "t01").claimName)
        // And while this tick works on t01, another worker finishes t02's base backup.
        let executor = RecordingExecutor()
        executor.before = { spec, inst in
            guard spec == TickJobSpec(.postgresBaseBackup, tenant: "t01") else { return }
            let id = try inst.catalog.startRun(kind: .postgresBaseBackup, tenant: "t02", at: inst.clock.now())
            try inst.catalog.finishRun(id: id, at: inst.clock.now(), status: .ok, detail: "{}")
        }
        let first = try inst.tick(executor: executor)
        let firstJobs = first.jobs.map { "\($0.kind) \($0.tenant ?? $0.store ?? "-") \($0.result.rawValue)" }
        #expect(firstJobs.contains("docs-backup t01 locked"), "\(firstJobs)")
        #expect(!executor.calls.current.contains { $0.spec == TickJobSpec(.documentsBackup, tenant: "t01") })
        #expect(!executor.calls.current.contains { $0.spec == TickJobSpec(.postgresBaseBackup, tenant: "t02") })
        #expect(first.alreadyDone == 1)
        #expect(executor.calls.current.contains { $0.spec == TickJobSpec(.documentsBackup, tenant: "t02") })

        held.release()
        executor.before = nil
        let before = executor.calls.current.count
        clock.set(Self.t0.addingTimeInterval(600))
        let second = try inst.tick(executor: executor)
        let ran = executor.calls.current.dropFirst(before).map { "\($0.spec)" }
        #expect(ran == ["docs-backup t01", "replicate t01"], "\(ran) \(second.jobs)")
    }
}
