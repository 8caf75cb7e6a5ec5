import Foundation

// Job leases, written once for both back ends. A lease row exists per (owner, job) once anyone
// claimed it; it is never deleted, so `done_at` outlives the leases and answers "did a worker
// finish this since the caller looked" (which closes the race of two ticks that both read the
// runs before either ran the job).

extension SQLCatalog {
    public func claimJob(_ job: JobKey, worker: String, lease: TimeInterval, notDoneSince: Date?) throws -> JobClaim {
        try locked { db in
            try db.transaction {
                try db.execute(
                    """
                    INSERT INTO job_leases (owner, job, worker, expires_ms, done_at) VALUES (?, ?, '', 0, NULL)
                    ON CONFLICT (owner, job) DO NOTHING
                    """, [.text(job.owner), .text(job.job)])
                let rows = try db.query(
                    """
                    SELECT worker, expires_ms, done_at, \(db.nowMilliseconds) FROM job_leases
                    WHERE owner = ? AND job = ?\(db.lockRowSkippingLocked)
                    """, [.text(job.owner), .text(job.job)]
                ) { r in
                    (worker: r.text(0), expires: r.int64(1), done: r.optionalInt64(2), now: r.int64(3))
                }
                // No row under SKIP LOCKED: another worker's claim holds the row lock this instant.
                guard let row = rows.first else { return .held(by: "another worker") }
                if row.expires > row.now { return .held(by: row.worker) }
                if let done = row.done, let since = notDoneSince, done >= since.unixMilliseconds {
                    return .done(at: Date(unixMilliseconds: done))
                }
                try db.execute(
                    "UPDATE job_leases SET worker = ?, expires_ms = \(db.nowMilliseconds) + ? WHERE owner = ? AND job = ?",
                    [.text(worker), .int64(Self.milliseconds(lease)), .text(job.owner), .text(job.job)])
                return .claimed
            }
        }
    }

    public func renewJob(_ job: JobKey, worker: String, lease: TimeInterval) throws -> Bool {
        try locked { db in
            try db.execute(
                """
                UPDATE job_leases SET expires_ms = \(db.nowMilliseconds) + ?
                WHERE owner = ? AND job = ? AND worker = ? AND expires_ms > 0
                """, [.int64(Self.milliseconds(lease)), .text(job.owner), .text(job.job), .text(worker)]) == 1
        }
    }

    @discardableResult
    public func releaseJob(_ job: JobKey, worker: String, doneAt: Date?) throws -> Bool {
        try locked { db in
            try db.execute(
                """
                UPDATE job_leases SET expires_ms = 0, done_at = COALESCE(?, done_at)
                WHERE owner = ? AND job = ? AND worker = ?
                """, [SQLiteValue(doneAt), .text(job.owner), .text(job.job), .text(worker)]) == 1
        }
    }

    private static func milliseconds(_ seconds: TimeInterval) -> Int64 {
        Int64((max(seconds, 0.001) * 1000).rounded())
    }
}
