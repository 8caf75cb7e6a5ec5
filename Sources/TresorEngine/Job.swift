import Foundation
import TresorCatalog
import TresorCore
import TresorRepository

/// What a job returns: a result the run record stores whole (as JSON) with its outcome as the
/// run's status.
public protocol JobResult: Encodable {
    var outcome: Outcome { get }
}

/// One job as a value: its kind, the tenant it concerns (nil for installation-wide jobs), and the
/// work. Nothing runs until ``Installation/run(_:)``, which records the run.
///
/// Checks that need no catalog row (the tenant exists, its options make sense, its lock is free)
/// belong before the job is built; anything that fails inside `work` is a failed run.
public struct Job<Result: JobResult> {
    public let kind: RunKind
    public let tenant: TenantID?
    let work: () throws -> Result

    public init(_ kind: RunKind, tenant: TenantID?, _ work: @escaping () throws -> Result) {
        self.kind = kind
        self.tenant = tenant
        self.work = work
    }
}

/// The one place a job's run is recorded: started, then finished with the result's outcome and
/// the result as detail, or `failed` with the error (and its hint) when the work throws.
struct RunRecorder {
    let catalog: any Catalog
    let clock: any Clock

    func run<R: JobResult>(_ job: Job<R>) throws -> R {
        try record(job.kind, tenant: job.tenant, job.work, status: { RunStatus($0.outcome) }, detail: { $0 })
    }

    /// What ``run(_:)`` does, for work whose result is not a ``JobResult`` or whose run status
    /// or detail is not simply the result's: a tick stores counts, retention makes a failed store
    /// a failed run. Every recorded run in the Engine goes through here.
    func record<R, Detail: Encodable>(
        _ kind: RunKind, tenant: TenantID?, _ work: () throws -> R,
        status: (R) -> RunStatus, detail: (R) -> Detail
    ) throws -> R {
        let id = try catalog.startRun(kind: kind, tenant: tenant?.rawValue, at: clock.now())
        do {
            let result = try work()
            try catalog.finishRun(id: id, at: clock.now(), status: status(result), detail: json(detail(result)))
            return result
        } catch {
            // The work's error is what the caller must see; a catalog that cannot record the
            // failure either leaves the row `running`, which `tresor runs` shows as unfinished.
            try? catalog.finishRun(id: id, at: clock.now(), status: .failed, detail: json(FailedRun(error)))
            throw error
        }
    }
}

/// The detail of a failed run.
struct FailedRun: Encodable {
    var error: String
    var hint: String?

    init(_ error: any Error) {
        self.error = "\(error)"
        hint = (error as? any TresorFailure)?.hint
    }
}

extension Installation {
    /// Runs `job` and records the run in the catalog, failed runs too.
    public func run<R: JobResult>(_ job: Job<R>) throws -> R {
        try RunRecorder(catalog: catalog, clock: clock).run(job)
    }

    /// ``RunRecorder/record(_:tenant:_:status:detail:)`` on this installation's catalog and clock.
    func recordRun<R, Detail: Encodable>(
        _ kind: RunKind, tenant: TenantID?, _ work: () throws -> R,
        status: (R) -> RunStatus, detail: (R) -> Detail
    ) throws -> R {
        try RunRecorder(catalog: catalog, clock: clock).record(kind, tenant: tenant, work, status: status, detail: detail)
    }
}

extension Checker.Report: JobResult {
    public var outcome: Outcome { isClean ? .ok : .problemFound }
}
