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
        let id = try inst.catalog.startRun(kind: job.kind, tenant: job.tenant?.rawValue, at: at)
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
        let home = Home(root: dir.sub("home"))
        _ = try Installation.initialize(home: home, configFile: nil)
        try policy.write(to: dir.sub("home").appendingPathComponent("policies/zz-test.toml"), atomically: true, encoding: .utf8)
        let clock = SimulatedClock(created)
        let inst = try Installation.open(home: home, configFile: nil, clock: clock)
        _ = try inst.addStore(name: "local", url: "file://" + dir.sub("store").path, region: "eu-central")
        _ = try inst.addStore(name: "off", url: "file://" + dir.sub("off").path, region: "eu-central")
        for i in 1...count {
            let name = String(format: "t%02d", i)
            try inst.catalog.addTenant(
                TenantRecord(
                    name: name, region: "eu-central", store: "local", offsiteStore: "off",
                    pgDSN: "host=/nonexistent dbname=\(name)", docRoots: ["/nonexistent/\(name)"],
                    createdAt: created))
        }
        return (dir, inst, clock)
    }

    static func dayIndex(_ d: Date) -> Int { Int((d.timeIntervalSince(t0) / day).rounded(.down)) }

    /// The shipped test policy with `overrides` on top, read through the policy schema.
    static func policy(_ overrides: String) throws -> Policy {
        let dir = TempDirectory("tresor-policy")
        try TestPolicy.smallText.write(to: dir.url.appendingPathComponent("a.toml"), atomically: true, encoding: .utf8)
        try overrides.write(to: dir.url.appendingPathComponent("b.toml"), atomically: true, encoding: .utf8)
        return try Policy.load(directory: dir.url)
    }

    static func tenant(_ name: String, created: Date, contractEnd: Date? = nil) -> TenantRecord {
        TenantRecord(
            name: name, region: "eu-central", store: "local", offsiteStore: "off", pgDSN: "host=/nonexistent dbname=\(name)",
            docRoots: ["/nonexistent/\(name)"], createdAt: created, contractEnd: contractEnd)
    }

    /// A tick of the planner alone: what is due at `now` runs, each job recorded as an `ok` run at
    /// `now` in the in-memory state (the double of the catalog and of every job).
    static func tick(_ state: inout TickState, _ policy: Policy, at now: Date, into calls: inout [(spec: TickJobSpec, at: Date)]) {
        for spec in TickPlanner.due(state, policy: policy, now: now).joined() {
            calls.append((spec, now))
            state.note(
                RunRecord(
                    id: 0, tenant: spec.tenant?.rawValue, kind: spec.kind, startedAt: now, endedAt: now, status: .ok,
                    detail: spec.store.map { #"{"store":"\#($0)"}"# } ?? "{}"))
        }
    }

    @Test func aSimulatedMonthRunsEachJobOncePerSlotSpreadsDrillsAndCatchesUpAnOutageOnce() throws {
        let policy = try Self.policy("[drills]\ninterval = \"30d\"\nmax_age = \"30d\"\n")
        var state = TickState(
            tenants: (1...20).map { Self.tenant(String(format: "t%02d", $0), created: Self.t0.addingTimeInterval(-3600)) }
                // A 21st tenant's contract ended so that its deletion deadline (90 days) falls on day 5 at noon.
                + [
                    Self.tenant(
                        "t21", created: Self.t0.addingTimeInterval(-200 * Self.day),
                        contractEnd: Self.t0.addingTimeInterval((5.5 - 90) * Self.day))
                ],
            stores: ["local", "off"])
        var calls: [(spec: TickJobSpec, at: Date)] = []
        let outage = 10..<12  // days without any tick
        var ticks = 0
        for step in 0..<(30 * 288) {
            let now = Self.t0.addingTimeInterval(Double(step) * 300)
            if outage.contains(Self.dayIndex(now)) { continue }
            Self.tick(&state, policy, at: now, into: &calls)
            ticks += 1
        }
        #expect(ticks == 28 * 288)

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
        // The catch-up after the outage is the first tick of day 12, once per job (drills run on
        // their own days, whatever the hour).
        let day12 = calls.filter { Self.dayIndex($0.at) == 12 && $0.spec.kind != .drill }
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

    @Test func aTenantWhoseDrillsFailIsRetriedDailyOnceItsLastPassGetsOldAndAPassingOneKeepsItsDay() throws {
        let policy = try Self.policy("[drills]\ninterval = \"30d\"\nmax_age = \"30d\"\nrenew_before = \"3d\"\n")
        var state = TickState(
            tenants: [
                Self.tenant("good", created: Self.t0.addingTimeInterval(-90 * Self.day)),
                Self.tenant("bad", created: Self.t0.addingTimeInterval(-90 * Self.day)),
            ], stores: [])
        // Both passed a drill on day -20; "bad"'s later drill on day -5 found a problem.
        for (t, d, status) in [("good", -20.0, RunStatus.ok), ("bad", -20, .ok), ("bad", -5, .problemFound)] {
            state.note(RunRecord(id: 0, tenant: t, kind: .drill, startedAt: Self.t0.addingTimeInterval(d * Self.day), status: status, detail: "{}"))
        }
        var drills: [String: [Int]] = [:]
        for step in 0..<(20 * 288) {
            let now = Self.t0.addingTimeInterval(Double(step) * 300)
            for spec in TickPlanner.due(state, policy: policy, now: now).joined() where spec.kind == .drill {
                drills[spec.owner, default: []].append(Self.dayIndex(now))
                // "bad" keeps failing its drills: a problem found, never a pass.
                state.note(
                    RunRecord(
                        id: 0, tenant: spec.tenant?.rawValue, kind: .drill, startedAt: now,
                        status: spec.owner == "bad" ? .problemFound : .ok, detail: "{}"))
            }
        }
        // 27 days after the pass of day -20 (max_age 30d minus renew_before 3d): day 7, then daily.
        #expect(drills["bad"] == Array(7..<20), "\(drills)")
        // A passing tenant: once, before its pass of day -20 is older than max_age (day 10).
        #expect(drills["good"]?.count == 1 && drills["good"]!.allSatisfy { $0 <= 10 }, "\(drills)")
    }

    @Test func aFewSimulatedDaysThroughTickAndTheRealCatalogRunEachJobOnceAndCatchUpOnce() throws {
        let (dir, inst, clock) = try Self.home(tenants: 4, created: Self.t0.addingTimeInterval(-3600), policy: "[tick]\nconcurrency = 3\n")
        withExtendedLifetime(dir) {}
        let executor = RecordingExecutor()
        // Every 30 minutes for four days; nothing runs on day 1.
        for step in 0..<(4 * 48) {
            let now = Self.t0.addingTimeInterval(Double(step) * 1800)
            if Self.dayIndex(now) == 1 { continue }
            clock.set(now)
            let r = try inst.tick(executor: executor)
            #expect(r.failed == 0 && !r.jobs.contains { $0.result == .locked }, "\(r.jobs)")
        }
        var perDay: [String: Int] = [:]
        for c in executor.calls.current where c.spec.kind != .drill { perDay["\(c.spec) \(Self.dayIndex(c.at))", default: 0] += 1 }
        #expect(perDay.values.allSatisfy { $0 == 1 }, "\(perDay.filter { $0.value > 1 })")
        for t in ["t01", "t02", "t03", "t04"] {
            let id = try TenantID(t)
            for kind in [RunKind.documentsBackup, .postgresBaseBackup, .replicate, .retention] {
                let days = executor.calls.current.filter { $0.spec == TickJobSpec(kind, tenant: id) }.map { Self.dayIndex($0.at) }
                #expect(days == [0, 2, 3], "\(kind) \(t): \(days)")
            }
        }
        // The catalog holds what the double recorded, and a tick run per tick.
        #expect(try inst.catalog.runs(tenant: "t01", kind: .documentsBackup, limit: 100).count == 3)
        #expect(try inst.catalog.runs(tenant: nil, kind: .tick, limit: 1000).count == 3 * 48)
    }

    @Test func aSecondTickLeavesAJobAnotherHoldsAndSkipsOneDoneSinceItsPlan() throws {
        let (dir, inst, clock) = try Self.home(tenants: 3, created: Self.t0, policy: "[tick]\nconcurrency = 1\n")
        withExtendedLifetime(dir) {}
        let t01: TenantID = "t01", t02: TenantID = "t02"
        clock.set(Self.t0.addingTimeInterval(300))
        // Another tick is backing up t01's documents: it holds that job's claim.
        let held = try inst.home.locker.acquire(TickJobSpec(.documentsBackup, tenant: TenantID("t01")).claimName)
        // And while this tick works on t01, another worker finishes t02's base backup.
        let executor = RecordingExecutor()
        executor.before = { spec, inst in
            guard spec == TickJobSpec(.postgresBaseBackup, tenant: t01) else { return }
            let id = try inst.catalog.startRun(kind: .postgresBaseBackup, tenant: "t02", at: inst.clock.now())
            try inst.catalog.finishRun(id: id, at: inst.clock.now(), status: .ok, detail: "{}")
        }
        let first = try inst.tick(executor: executor)
        let firstJobs = first.jobs.map { "\($0.kind) \($0.tenant ?? $0.store ?? "-") \($0.result.rawValue)" }
        #expect(firstJobs.contains("docs-backup t01 locked"), "\(firstJobs)")
        #expect(!executor.calls.current.contains { $0.spec == TickJobSpec(.documentsBackup, tenant: t01) })
        #expect(!executor.calls.current.contains { $0.spec == TickJobSpec(.postgresBaseBackup, tenant: t02) })
        #expect(first.alreadyDone == 1)
        #expect(executor.calls.current.contains { $0.spec == TickJobSpec(.documentsBackup, tenant: t02) })

        held.release()
        executor.before = nil
        let before = executor.calls.current.count
        clock.set(Self.t0.addingTimeInterval(600))
        let second = try inst.tick(executor: executor)
        let ran = executor.calls.current.dropFirst(before).map { "\($0.spec)" }
        #expect(ran == ["docs-backup t01", "replicate t01"], "\(ran) \(second.jobs)")
    }

    /// A tenant name that is no valid id can only come from a catalog edited by hand; it must
    /// fail the tick loudly without keeping every other tenant from being backed up.
    @Test func aHandEditedTenantNameFailsTheTickLoudlyAndTheOtherTenantsStillRun() throws {
        let (dir, inst, clock) = try Self.home(tenants: 2, created: Self.t0, policy: "[tick]\nconcurrency = 1\n")
        withExtendedLifetime(dir) {}
        let edit = Process()
        edit.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        edit.arguments = [dir.sub("home").appendingPathComponent("catalog.sqlite").path, "UPDATE tenants SET name = 'T 02' WHERE name = 't02'"]
        try edit.run()
        edit.waitUntilExit()
        try #require(edit.terminationStatus == 0)
        clock.set(Self.t0.addingTimeInterval(300))
        let executor = RecordingExecutor()
        let r = try inst.tick(executor: executor)
        let t01: TenantID = "t01"
        let failed = r.jobs.filter { $0.result == .failed }
        #expect(failed.count == 1 && failed.first?.tenant == "T 02" && failed.first?.kind == .run(.tick), "\(r.jobs)")
        #expect(failed.first?.error?.contains("'T 02'") == true)
        #expect(executor.calls.current.contains { $0.spec == TickJobSpec(.documentsBackup, tenant: t01) })
        #expect(!executor.calls.current.contains { $0.spec.owner == "T 02" })
        // The tick itself is recorded as failed, so the problem shows in `tresor jobs` too.
        #expect(try inst.catalog.runs(tenant: nil, kind: .tick, limit: 1).first?.status == .failed)
    }
}
