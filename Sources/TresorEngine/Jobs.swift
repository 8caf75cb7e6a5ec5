import Foundation
import TresorCatalog
import TresorCore

/// One recorded job run as `tresor jobs` shows it: the catalog's row, with the bytes and the
/// error read out of the run's detail.
public struct JobRun: Codable, Sendable, Equatable {
    public var id: Int64
    public var tenant: String?
    public var kind: String
    public var startedAt: Date
    public var endedAt: Date?
    /// `running`, `ok`, `problem_found` or `failed`.
    public var result: String
    /// Seconds from start to end; `nil` while running.
    public var durationSeconds: Double?
    /// The amount of data the run moved, when its detail says so (see ``JobRun/bytesKeys``).
    public var bytes: UInt64?
    /// The detail's `error`, for failed runs.
    public var error: String?
    /// `host:pid` of the process that started it; `nil` for runs recorded before catalogs kept it.
    public var worker: String?

    /// Detail keys that carry a run's byte count, in the order they are looked for: document
    /// and base backups, restores and checks write `bytes`, replication `bytesCopied`.
    static let bytesKeys = ["bytes", "bytesCopied", "newBytesStored", "bytesRead"]

    public init(_ run: RunRecord) {
        id = run.id
        tenant = run.tenant
        kind = run.kind.rawValue
        startedAt = run.startedAt
        endedAt = run.endedAt
        result = run.status.rawValue
        durationSeconds = run.endedAt.map { $0.timeIntervalSince(run.startedAt) }
        worker = run.worker
        // The detail is our own JSON; a run whose detail is not an object (never written by this
        // code) simply shows no bytes and no error, and its detail stays in the catalog.
        let object = (try? JSONSerialization.jsonObject(with: Data(run.detail.utf8))) as? [String: Any] ?? [:]
        bytes = Self.bytesKeys.lazy.compactMap { (object[$0] as? NSNumber)?.uint64Value }.first
        error = object["error"] as? String
    }
}

/// What `tresor jobs` selects.
public struct JobFilter: Sendable {
    public var tenant: TenantID?
    public var failedOnly = false
    public var since: Date?

    public init(tenant: TenantID? = nil, failedOnly: Bool = false, since: Date? = nil) {
        self.tenant = tenant
        self.failedOnly = failedOnly
        self.since = since
    }
}

extension Installation {
    /// Every recorded run that matches `filter`, newest first. "Failed" means `failed` or
    /// `problem_found`: both need an operator. Runs outlive tenants, so an unknown tenant is
    /// no error (it has no runs).
    public func jobs(_ filter: JobFilter) throws -> [JobRun] {
        // The catalog protocol has no time filter yet; runs come newest first, so reading stops
        // at the first one older than `since`.
        var out: [JobRun] = []
        for run in try catalog.runs(tenant: filter.tenant?.rawValue, kind: nil, limit: Int(Int32.max)) {
            if let since = filter.since, run.startedAt < since { break }
            if filter.failedOnly, run.status != .failed, run.status != .problemFound { continue }
            out.append(JobRun(run))
        }
        return out
    }

    /// The newest `limit` recorded runs this process started (its ``WorkerName``), newest first:
    /// what the log handler reports at the end of a command.
    public func jobsOfThisProcess(limit: Int = 100) throws -> [JobRun] {
        let me = WorkerName.current
        return try catalog.runs(tenant: nil, kind: nil, limit: limit).filter { $0.worker == me }.map(JobRun.init)
    }
}

extension JobFilter {
    /// `--since`: a time (`2026-11-27`, RFC 3339, `@unix`) or a duration back from `now` (`7d`, `12h`).
    public static func parseSince(_ text: String, now: Date) throws -> Date {
        if let d = PolicyDuration(text) { return now.addingTimeInterval(-d.seconds) }
        if let t = TimeFormat.parse(text) { return t }
        throw CoreError.usage("cannot read --since '\(text)'", hint: "give a time (2026-11-27, 2026-11-27T10:00:00Z) or a duration (7d, 12h)")
    }
}
