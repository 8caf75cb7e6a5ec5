import Foundation
import Testing
import TresorCatalog
import TresorCore

/// Job leases and the lock built on them, on both back ends. Every worker has its own
/// connection, as separate processes would.
@Suite("Job leases")
struct JobLeaseTests {
    let job = JobKey(owner: "acme", job: "docs-backup")

    @Test(arguments: CatalogBackend.allCases)
    func aSecondWorkerCannotClaimAJobAnotherHolds(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let w1 = try open(worker: "w1"), w2 = try open(worker: "w2")
            #expect(try w1.claimJob(job, worker: "w1", lease: 60, notDoneSince: nil) == .claimed)
            #expect(try w2.claimJob(job, worker: "w2", lease: 60, notDoneSince: nil) == .held(by: "w1"))
            // Another job of the same tenant, or the same job of another tenant, is free.
            #expect(try w2.claimJob(JobKey(owner: "acme", job: "replicate"), worker: "w2", lease: 60, notDoneSince: nil) == .claimed)
            #expect(try w2.claimJob(JobKey(owner: "beta", job: "docs-backup"), worker: "w2", lease: 60, notDoneSince: nil) == .claimed)
            #expect(try w1.releaseJob(job, worker: "w1", doneAt: nil))
            #expect(try w2.claimJob(job, worker: "w2", lease: 60, notDoneSince: nil) == .claimed)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aDeadWorkersLeaseGoesToAnotherWhenItRunsOutAndNotBefore(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let dead = try open(worker: "dead"), alive = try open(worker: "alive")
            #expect(try dead.claimJob(job, worker: "dead", lease: 0.3, notDoneSince: nil) == .claimed)
            #expect(try alive.claimJob(job, worker: "alive", lease: 60, notDoneSince: nil) == .held(by: "dead"))
            Thread.sleep(forTimeInterval: 0.6)  // "dead" never renews
            #expect(try alive.claimJob(job, worker: "alive", lease: 60, notDoneSince: nil) == .claimed)
            // The late worker learns it lost the job and cannot release the new holder's lease.
            #expect(try dead.renewJob(job, worker: "dead", lease: 60) == false)
            #expect(try dead.releaseJob(job, worker: "dead", doneAt: mar9) == false)
            #expect(try open(worker: "third").claimJob(job, worker: "third", lease: 60, notDoneSince: nil) == .held(by: "alive"))
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aRenewedLeaseOutlivesItsFirstTerm(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let w1 = try open(worker: "w1"), w2 = try open(worker: "w2")
            #expect(try w1.claimJob(job, worker: "w1", lease: 0.5, notDoneSince: nil) == .claimed)
            #expect(try w1.renewJob(job, worker: "w1", lease: 60))
            Thread.sleep(forTimeInterval: 0.8)
            #expect(try w2.claimJob(job, worker: "w2", lease: 60, notDoneSince: nil) == .held(by: "w1"))
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aJobFinishedSinceTheCallerLookedIsNotRunAgain(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let w1 = try open(worker: "w1"), w2 = try open(worker: "w2")
            #expect(try w1.claimJob(job, worker: "w1", lease: 60, notDoneSince: feb1) == .claimed)
            #expect(try w1.releaseJob(job, worker: "w1", doneAt: mar9))
            // w2 read the runs before w1 finished: the job looked due for the slot starting feb1.
            #expect(try w2.claimJob(job, worker: "w2", lease: 60, notDoneSince: feb1) == .done(at: mar9))
            #expect(try w2.claimJob(job, worker: "w2", lease: 60, notDoneSince: mar9) == .done(at: mar9))
            // The next slot: due again. A release without doneAt (a failed job) keeps the old mark.
            #expect(try w2.claimJob(job, worker: "w2", lease: 60, notDoneSince: nov27) == .claimed)
            #expect(try w2.releaseJob(job, worker: "w2", doneAt: nil))
            #expect(try w1.claimJob(job, worker: "w1", lease: 60, notDoneSince: feb1) == .done(at: mar9))
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func concurrentClaimsFromManyConnectionsHaveOneWinnerPerJob(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let workers = try (0..<6).map { try open(worker: "w\($0)") }
            let jobs = (0..<20).map { JobKey(owner: "t\($0)", job: "docs-backup") }
            let wins = Locked([JobKey: [String]]())
            let sink = ErrorSink()
            DispatchQueue.concurrentPerform(iterations: workers.count * jobs.count) { i in
                sink.record {
                    let w = i % workers.count, key = jobs[i / workers.count]
                    if try workers[w].claimJob(key, worker: "w\(w)", lease: 60, notDoneSince: nil) == .claimed {
                        wins.withLock { $0[key, default: []].append("w\(w)") }
                    }
                }
            }
            #expect(sink.errors == [])
            #expect(wins.current.count == jobs.count)
            #expect(wins.current.values.allSatisfy { $0.count == 1 })
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aCatalogLockExcludesOtherWorkersUntilReleased(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let a = CatalogLocks(catalog: try open(worker: "a"), worker: "a", lease: 60)
            let b = CatalogLocks(catalog: try open(worker: "b"), worker: "b", lease: 60)
            let held = try a.acquire("acme")
            let error = #expect(throws: CoreError.self) { try b.acquire("acme") }
            #expect(error?.kind == .locked)
            #expect(error?.message.contains("worker a") == true)
            _ = try b.acquire("beta")
            held.release()
            let taken = try b.acquire("acme")
            #expect(taken.name == "acme")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aHeldJobLeaseIsRenewedWhileItsJobRuns(_ backend: CatalogBackend) throws {
        try withCatalog(backend) { open in
            let w1 = try open(worker: "w1"), w2 = try open(worker: "w2")
            guard case .success(let lease) = try JobLease.claim(job, in: w1, worker: "w1", lease: 0.6, notDoneSince: nil) else {
                Issue.record("w1 could not claim a free job")
                return
            }
            Thread.sleep(forTimeInterval: 1.5)  // more than twice the lease: only renewals keep it
            #expect(try w2.claimJob(job, worker: "w2", lease: 60, notDoneSince: nil) == .held(by: "w1"))
            #expect(try lease.finish(doneAt: mar9) == nil)
            #expect(try w2.claimJob(job, worker: "w2", lease: 60, notDoneSince: feb1) == .done(at: mar9))
        }
    }
}
