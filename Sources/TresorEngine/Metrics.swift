import Foundation
import TresorCatalog
import TresorCore
import TresorEvidence

/// What `tresor metrics` (and the end of `tick`) wrote.
public struct MetricsResult: Sendable, Codable {
    public var path: String
    public var samples: Int
    public var tenants: Int
    /// Figures that could not be read (a tenant's WAL window, the evidence log); each is also in
    /// the file as `tresor_metrics_collection_failed`, and makes the outcome a problem found.
    public var failures: [String]
    public var outcome: Outcome { failures.isEmpty ? .ok : .problemFound }
}

extension Installation {
    /// Collects the metrics from the catalog, the evidence log and the tenants' repositories.
    /// Read-only: no evidence record is appended (unlike `drill status`).
    public func collectMetrics() throws -> (MetricsText, failures: [String], tenants: Int) {
        var m = MetricsText()
        var failures: [String] = []
        let now = clock.now()
        func failed(_ what: String, tenant: String?, _ error: Error) {
            failures.append("\(what)\(tenant.map { " of tenant \($0)" } ?? ""): \(error)")
            m.gauge(
                "tresor_metrics_collection_failed", "1 when a figure could not be read; see tresor metrics' output",
                [("tenant", tenant ?? ""), ("figure", what)], 1)
        }
        m.gauge("tresor_metrics_generated_timestamp_seconds", "When this file was written (the installation's clock).", [], now.timeIntervalSince1970)

        // Runs: the newest successful one of each tenant and kind, and per worker counts.
        struct Key: Hashable { var tenant: String; var kind: String }
        var lastOK: [Key: JobRun] = [:]
        var perWorker: [String: [String: Int]] = [:]
        for run in try catalog.runs(tenant: nil, kind: nil, limit: Int(Int32.max)) {
            let job = JobRun(run)
            // Per host: the pid part of `host:pid` differs for every process (each tick is one).
            let host = job.worker.map { w in w.lastIndex(of: ":").map { String(w[..<$0]) } ?? w } ?? "unknown"
            perWorker[host, default: [:]][job.result, default: 0] += 1
            guard run.status == .ok else { continue }
            let key = Key(tenant: job.tenant ?? "", kind: job.kind)
            if lastOK[key] == nil { lastOK[key] = job }  // newest first
        }
        for (key, job) in lastOK.sorted(by: { ($0.key.tenant, $0.key.kind) < ($1.key.tenant, $1.key.kind) }) {
            let labels = [("tenant", key.tenant), ("job", key.kind)]
            m.gauge(
                "tresor_last_success_timestamp_seconds", "Start of the newest successful run of this job kind (tenant \"\" for runs of no tenant).",
                labels, job.startedAt.timeIntervalSince1970)
            if let d = job.durationSeconds {
                m.gauge("tresor_last_success_duration_seconds", "Duration of the newest successful run.", labels, d)
            }
            if let b = job.bytes {
                m.gauge("tresor_last_success_bytes", "Bytes the newest successful run moved (see docs/operations.md).", labels, Double(b))
            }
        }
        for (worker, counts) in perWorker.sorted(by: { $0.key < $1.key }) {
            for (result, n) in counts.sorted(by: { $0.key < $1.key }) {
                m.gauge(
                    "tresor_worker_runs", "Recorded runs per worker host and result (\"unknown\": runs from before catalogs named the worker).",
                    [("worker", worker), ("result", result)], Double(n))
            }
        }

        // Drills: from the verified evidence log, as `drill status` judges them.
        let tenants = try catalog.tenants()
        let active = try activeTenants()
        do {
            let (verification, history) = try verifiedDrillHistory()
            m.gauge("tresor_evidence_log_intact", "1 when the evidence log verifies to its end.", [], verification.firstBad == nil ? 1 : 0)
            for s in DrillControl.evaluate(history: history, tenants: active, asOf: now, maxAge: policy.drills.maxAge) {
                m.gauge(
                    "tresor_drill_passed_ever", "1 when the tenant has a passing drill in the verified evidence log.",
                    [("tenant", s.tenant)], s.lastPass == nil ? 0 : 1)
                if let last = s.lastPass {
                    m.gauge(
                        "tresor_drill_last_pass_age_seconds", "Age of the tenant's last passing drill.",
                        [("tenant", s.tenant)], now.timeIntervalSince(last))
                }
            }
        } catch {
            failed("drills", tenant: nil, error)
        }

        // Recoverable windows of the tenants with a database, and contract ends.
        for t in tenants {
            if t.pgDSN != nil {
                do {
                    let w = try postgresWindow(tenant: t.id)
                    if let s = w.earliestTime.flatMap(TimeFormat.parse) {
                        m.gauge(
                            "tresor_pg_window_start_timestamp_seconds", "Earliest point the tenant's database can be restored to.",
                            [("tenant", t.name)], s.timeIntervalSince1970)
                    }
                    if let e = w.latestTime.flatMap(TimeFormat.parse) {
                        m.gauge(
                            "tresor_pg_window_end_timestamp_seconds", "Latest point the tenant's database can be restored to.",
                            [("tenant", t.name)], e.timeIntervalSince1970)
                        // What a crash now would lose: how far the archive (streamed or pushed WAL) trails the clock.
                        m.gauge(
                            "tresor_pg_wal_lag_seconds", "Seconds between now and the latest point the tenant's database can be restored to.",
                            [("tenant", t.name)], max(0, now.timeIntervalSince(e)))
                    }
                } catch {
                    failed("pg_window", tenant: t.name, error)
                }
            }
            // The deletion clock: the contract's end, and the deadline the deletion policy sets.
            if let end = t.contractEnd {
                m.gauge(
                    "tresor_contract_end_timestamp_seconds", "When the tenant's contract ended (the deletion clock's start).",
                    [("tenant", t.name)], end.timeIntervalSince1970)
                m.gauge(
                    "tresor_deletion_deadline_timestamp_seconds",
                    "When every copy of the tenant's data must be gone (contract end plus deletion.delay_after_contract_end).",
                    [("tenant", t.name)], end.addingTimeInterval(policy.deletion.delayAfterContractEnd.seconds).timeIntervalSince1970)
            }
        }
        return (m, failures, tenants.count)
    }

    /// `tresor metrics --out FILE`: collects and writes the file atomically.
    public func writeMetrics(to path: String) throws -> MetricsResult {
        let (m, failures, tenants) = try collectMetrics()
        try m.write(to: path)
        return MetricsResult(path: path, samples: m.families.reduce(0) { $0 + $1.samples.count }, tenants: tenants, failures: failures)
    }
}
