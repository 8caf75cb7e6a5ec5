import Foundation
import TresorCore
import TresorPostgres

/// A drill's `read_tables` check, running on threads of its own while the drill's other checks
/// go on: every user table and materialized view of every database of the scratch server read in
/// full (every row, no index used; every compressed value decompressed and converted to text, see
/// ``Read/sql``).
///
/// The tables are read over one connection per core, largest first, so small tables fill the
/// connections while a large one is still read. A large table is not split into block ranges:
/// measured on `pgbench -s 60`, TID range scans read rows at about half the speed of a sequential
/// scan. Nor does a read use parallel workers: the reads are no longer the drill's longest check
/// (pg_amcheck's heapallindexed pass is), and workers only took cores from it (checks 2.4–2.6 s
/// without them against 2.9 s with, Benchmarks/README.md, drill section). Table names are
/// customer content: a failure is counted and placed by its database's position only.
final class TableReads: @unchecked Sendable {
    /// What the reads found.
    struct Found: Sendable {
        var tables = 0
        /// (database position, table number) of each table that failed to read.
        var failed: Set<[Int]> = []
        /// Why the reads could not be done at all (a database that refused a connection, a
        /// catalog that could not be listed); the check then fails with it.
        var error: String?
        var ms: Int64 = 0
        /// When the last reading thread ran out of tables (the check's own end, not ``join()``'s).
        var finished: Date?

        var failedTables: Int { failed.count }
        /// Positions (0-based, by name) of the databases with a table that failed to read.
        var failedDatabases: Set<Int> { Set(failed.map { $0[0] }) }
    }

    /// One table to read.
    struct Read: Sendable {
        var database: Int
        var table: Int
        var relation: String
        /// `, sum(length(t.col::text)) FILTER (WHERE pg_column_compression(t.col) IS NOT NULL)`
        /// for each variable-length column, in column order (built by the server with
        /// `format('%I')`); empty for a table whose columns all have a fixed width.
        var varlenaSums: String

        /// Reads every row (a sequential scan: the count) and decompresses every compressed value,
        /// stored in the row or out of line, converting it to text through its type's output
        /// function. The rest is plain bytes that the drill's other checks already cover:
        /// pg_amcheck's heap check walks every attribute of every tuple and every TOAST pointer's
        /// chunks, and every page read had its checksum verified. Converting every row to text
        /// (`t::text`, before) took 5.8 s of one core on `pgbench_accounts` against 1.1 s for
        /// this, and competed with pg_amcheck for the cores (Benchmarks/README.md, drill section).
        var sql: String {
            "SELECT count(*)\(varlenaSums) FROM ONLY \(relation) t"
        }
    }

    // @unchecked: `found` is shared by the reading threads under its own lock; `threads` is only
    // started in init and waited for in `join`.
    private let found = Locked(Found())
    private let threads = ThreadGroup()
    private let started = Date()

    /// Lists the tables over `conn` (a superuser's connection to the server) and one connection
    /// per database, then starts reading them; ``join()`` waits for the result.
    init(server: RecoveryServer, user: String, conn: PGConnection) {
        var reads: [Read] = []
        let dsns: [String]
        do {
            let dbs = try conn.query("SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname").compactMap { $0.first ?? nil }
            dsns = dbs.map { ScratchDatabase.dsn(server, user: user, database: $0) }
            var sized: [(read: Read, blocks: Int64)] = []
            var tables = 0
            for (i, dsn) in dsns.enumerated() {
                let c = try PGConnection(dsn: dsn)
                let rels = try c.query(
                    """
                    SELECT format('%I.%I', n.nspname, c.relname), pg_relation_size(c.oid) / current_setting('block_size')::bigint,
                        (SELECT string_agg(format(', sum(length(t.%1$I::text)) FILTER (WHERE pg_column_compression(t.%1$I) IS NOT NULL)', a.attname), '' ORDER BY a.attnum)
                         FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attlen = -1)
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
                    ORDER BY 1
                    """)
                for row in rels {
                    guard let relation = row.first ?? nil else { continue }  // format() of a listed relation is never null
                    let blocks = row.count > 1 ? (row[1].flatMap { Int64($0) } ?? 0) : 0
                    // NULL: no variable-length column, so nothing to decompress (the rows are still counted).
                    let sums = row.count > 2 ? (row[2] ?? "") : ""
                    sized.append((Read(database: i, table: tables, relation: relation, varlenaSums: sums), blocks))
                    tables += 1
                }
            }
            reads = sized.sorted { $0.blocks > $1.blocks }.map(\.read)
            found.withLock { $0.tables = tables }
        } catch {
            found.withLock { $0.error = "\(error)" }
            return
        }
        let next = Locked(0)
        let todo = reads
        let found = found
        threads.start(max(1, min(availableCores, todo.count)), name: "drill-read") { _ in
            var connections: [Int: PGConnection] = [:]
            defer { found.withLock { $0.finished = max($0.finished ?? .distantPast, Date()) } }
            while true {
                guard
                    let read = next.withLock({ n -> Read? in
                        guard n < todo.count, found.withLock({ $0.error == nil }) else { return nil }
                        n += 1
                        return todo[n - 1]
                    })
                else { return }
                let c: PGConnection
                do {
                    if let open = connections[read.database] {
                        c = open
                    } else {
                        c = try PGConnection(dsn: dsns[read.database])
                        // Sequential scans only: an index scan would skip the rows its index
                        // does not point at. No parallel workers: see the type's comment.
                        _ = try c.query(
                            "SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off; SET max_parallel_workers_per_gather = 0"
                        )
                        connections[read.database] = c
                    }
                } catch {
                    found.withLock { $0.error = $0.error ?? "\(error)" }
                    return
                }
                do {
                    _ = try c.query(read.sql)
                } catch {
                    found.withLock { _ = $0.failed.insert([read.database, read.table]) }
                }
            }
        }
    }

    /// Waits until every table was read (or the reads gave up) and returns what they found.
    func join() -> Found {
        threads.wait()
        var f = found.current
        f.ms = DrillRun.ms(started, f.finished ?? Date())
        return f
    }
}
