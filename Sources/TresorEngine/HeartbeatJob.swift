import Foundation
import TresorCatalog
import TresorCore
import TresorPostgres

/// Heartbeats: the exact data-loss bound of a `latest` drill (issue 11).
///
/// For each tenant that opted in (`drills.heartbeat_tenants`), every `tresor tick` writes the
/// tick's clock time into one row of `tresor.heartbeat` in the tenant's database (the DSN's
/// database; the schema and table are created on first use). The row is a committed transaction
/// like any other, so it travels through the WAL archive. A `latest` drill reads the row back from
/// the restored cluster: everything the tenant committed before that time is in the restore, so
///
///     data-loss bound = the drill's start (the crash point) − the restored heartbeat's time
///
/// is an upper bound of what a crash at the drill's start would lose, proven by data (not by the
/// archive's listing). With a tick every minute it is at most about a minute plus the archive's
/// own delay. The bound is conservative: the row's time is taken before its commit.
extension Installation {
    /// The tenants that opted in, from `drills.heartbeat_tenants` (comma-separated names, `*`
    /// for every tenant).
    func heartbeatOptedIn(_ tenant: TenantRecord) -> Bool {
        let names = policy.drills.heartbeatTenants.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return names.contains("*") || names.contains(tenant.name)
    }

    /// Writes one heartbeat per opted-in tenant with a database; what `tick` calls each run.
    /// Returns one `heartbeat` tick job per tenant written or failed (none when no tenant opted in).
    public func writeHeartbeats() -> [TickJob] {
        let tenants: [TenantRecord]
        do {
            tenants = try catalog.tenants()
        } catch {
            return [TickJob(tenant: nil, store: nil, kind: .heartbeat, result: .failed, error: "cannot list tenants: \(error)")]
        }
        var jobs: [TickJob] = []
        for t in tenants where heartbeatOptedIn(t) {
            var job = TickJob(tenant: t.name, store: nil, kind: .heartbeat, result: .ok, error: nil)
            do {
                guard let dsn = t.pgDSN else { throw CoreError.failed("tenant '\(t.name)' opted in to heartbeats but has no database") }
                try writeHeartbeat(dsn: dsn, at: clock.now())
            } catch {
                job.result = .failed
                job.error = (error as? any TresorFailure)?.message ?? "\(error)"
            }
            jobs.append(job)
        }
        return jobs
    }

    func writeHeartbeat(dsn: String, at time: Date) throws {
        let conn = try PGConnection(dsn: dsn)
        let at = DrillRun.microsecondTime(time)
        _ = try conn.query(
            """
            CREATE SCHEMA IF NOT EXISTS tresor;
            CREATE TABLE IF NOT EXISTS tresor.heartbeat (id int PRIMARY KEY CHECK (id = 1), at timestamptz NOT NULL);
            INSERT INTO tresor.heartbeat VALUES (1, '\(at)') ON CONFLICT (id) DO UPDATE SET at = excluded.at
            """)
    }
}

extension DrillRun {
    /// For a `latest` drill of an opted-in tenant: the newest heartbeat in the restored cluster
    /// and the data-loss bound it proves (`now` − its time). A tenant that opted in without a
    /// heartbeat in the restore fails the `heartbeat` check.
    mutating func checkHeartbeat(_ plan: Plan, server: RecoveryServer, user: String, now: Date) {
        guard case .latest = plan.recoveryTarget, installation.heartbeatOptedIn(tenant) else { return }
        do {
            let database =
                tenant.pgDSN.flatMap { try? ConnInfo($0) }  // an unreadable DSN: the default database is read
                .flatMap { $0.options.last(where: { $0.keyword == "dbname" })?.value } ?? "postgres"
            let c = try PGConnection(dsn: dsn(server, user: user, database: database))
            let exists = try c.query("SELECT to_regclass('tresor.heartbeat') IS NOT NULL").first?.first ?? nil
            guard exists == "t" else {
                checks.append(.failed("heartbeat", reason: "the restored database holds no tresor.heartbeat table (has tick written one?)"))
                return
            }
            let text = try c.query("SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM tresor.heartbeat").first?.first ?? nil
            guard let text, let at = DrillRun.parseMicrosecondTime(text) else {
                checks.append(.failed("heartbeat", reason: "the restored tresor.heartbeat table holds no heartbeat"))
                return
            }
            heartbeat = at
            dataLossBoundMs = DrillRun.ms(at, now)
            checks.append(.passed("heartbeat"))
        } catch {
            fail("heartbeat", error)
        }
    }

    /// Reads what ``microsecondTime(_:)`` writes (whole seconds through TimeFormat, the six
    /// fraction digits added exactly).
    static func parseMicrosecondTime(_ text: String) -> Date? {
        guard let dot = text.firstIndex(of: "."), text.hasSuffix("Z"),
            let whole = TimeFormat.parse(String(text[..<dot]) + "Z"),
            let micros = Int(text[text.index(after: dot)..<text.index(before: text.endIndex)])
        else { return nil }
        return whole.addingTimeInterval(Double(micros) / 1_000_000)
    }
}
