import Foundation
import TresorCore
import TresorPostgres

#if canImport(Glibc)
import Glibc
#endif

/// What the database part of an export holds.
public struct DatabaseSummary: Sendable, Codable {
    public var database: String
    public var serverVersion: String
    /// The WAL position of the snapshot (`pg_current_wal_lsn()` in the exporting transaction).
    public var lsn: String
    /// The server's time when the snapshot was taken.
    public var snapshotTime: String
    public var tables: [TableSummary]
    /// Relations with no CSV file (materialized views, foreign tables): their definitions are in
    /// dump.sql; named here so nothing goes missing quietly.
    public var notCopied: [String]
}

public struct TableSummary: Sendable, Codable {
    public var schema: String
    public var table: String
    public var file: String
    public var rows: Int64
    public var bytes: Int64
}

/// The database of a live server, from one snapshot: a REPEATABLE READ transaction exports its
/// snapshot (`pg_export_snapshot()`) and stays open while `pg_dump --snapshot` writes schema.sql
/// and the parts of dump.sql that are not table rows, and a second connection that joins the
/// snapshot runs every table's `COPY ... TO STDOUT`, so every file shows the same moment.
///
/// Each table's rows are read from the server once: the CSV file is both
/// `tables/<schema>.<table>.csv` and, between `COPY ... FROM stdin WITH (FORMAT csv, HEADER true)`
/// and `\.`, that table's data in dump.sql. dump.sql is pg_dump's `--section=pre-data`, then
/// those COPY blocks, then pg_dump's `--section=data --section=post-data` with the copied tables'
/// data excluded (`--exclude-table-data`), which keeps sequence values, large objects and the data
/// of tables not copied as CSV (extension configuration tables). Tables whose CSV cannot be
/// loaded as it is keep pg_dump's own COPY: generated columns (COPY FROM refuses them), no
/// columns, and a value with a line that is exactly `\.` (psql would end the COPY there; such a
/// table gets a `pg_dump --section=data --table` of its own, on the same snapshot).
///
/// The init takes the snapshot and starts the pg_dumps and the copier in the background, so they
/// run while the documents stream into the archive; ``finish(into:)`` waits for them and archives
/// their output. Outputs are spooled to `spoolDirectory` (tar needs each entry's size before its
/// bytes): the CSV files stay until dump.sql is archived, so disk use peaks at the database's
/// size as CSV. Dropping the value before `finish` ends the pg_dumps it started.
final class LiveDatabaseExport {
    let dsn: String
    let binDirectory: String
    let spoolDirectory: String
    private let conn: PGConnection
    private var summary: DatabaseSummary
    /// pg_dump processes still running: spool name and pid.
    private var dumps: [(name: String, pid: pid_t)] = []
    /// The tables to copy, in archive order, with their file names; `load` is the COPY statement
    /// that loads the CSV in dump.sql, nil when dump.sql keeps pg_dump's data for the table.
    private var tables: [(schema: String, table: String, file: String, load: String?)] = []
    private let snapshot: String
    private var copier: TableCopier!

    /// The CSV dialect, in one place: README.txt describes exactly this.
    static let copyOptions = "FORMAT csv, HEADER true, FORCE_QUOTE *, ENCODING 'UTF8'"

    /// A connection in a REPEATABLE READ READ ONLY transaction, with the text forms every reader
    /// agrees on: UTF-8, bytea as \x hex, ISO dates in UTC, floats that round-trip.
    static func connect(_ dsn: String) throws -> PGConnection {
        let conn = try PGConnection(dsn: dsn, applicationName: "tresor export")
        for setting in [
            "SET client_encoding = 'UTF8'", "SET bytea_output = 'hex'", "SET DateStyle = 'ISO, YMD'",
            "SET IntervalStyle = 'postgres'", "SET extra_float_digits = 3", "SET TimeZone = 'UTC'",
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        ] {
            try conn.query(setting)
        }
        return conn
    }

    /// Takes the snapshot, starts the pg_dumps on it (schema.sql, dump.sql's parts before and
    /// after the table rows), and starts copying the tables on a second connection that joins the
    /// snapshot.
    init(dsn: String, binDirectory: String, spoolDirectory: String) throws {
        self.dsn = dsn
        self.binDirectory = binDirectory
        self.spoolDirectory = spoolDirectory
        conn = try Self.connect(dsn)
        let info = try conn.query(
            """
            SELECT pg_export_snapshot(), current_database(), current_setting('server_version'),
                   CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text,
                   to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
            """)
        guard let row = info.first, row.count == 5, let snapshot = row[0], let database = row[1] else {
            throw ExportError(.database, "the server returned no snapshot")
        }
        summary = DatabaseSummary(
            database: database, serverVersion: row[2] ?? "", lsn: row[3] ?? "",
            snapshotTime: row[4] ?? "", tables: [], notCopied: [])
        self.snapshot = snapshot
        try startDump(["--schema-only"], snapshot: snapshot, to: "schema.sql")
        try startDump(["--section=pre-data"], snapshot: snapshot, to: "dump-pre.sql")
        // The columns COPY FROM names (all of them, as SELECT * has them), quoted; whether one is
        // generated (COPY FROM refuses those).
        let relations = try conn.query(
            """
            SELECT n.nspname, c.relname, c.relkind::text,
                   quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                   (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                   EXISTS (SELECT 1 FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
            ORDER BY convert_to(n.nspname, 'UTF8'), convert_to(c.relname, 'UTF8')
            """)
        var usedFiles = Set<String>()
        for r in relations {
            guard let schema = r[0], let table = r[1], let kind = r[2] else { continue }
            guard kind == "r" else {
                summary.notCopied.append("\(schema).\(table) (\(kind == "m" ? "materialized view" : "foreign table"): definition in dump.sql)")
                continue
            }
            var file = "\(BagNames.fileComponent(schema)).\(BagNames.fileComponent(table)).csv"
            // Distinct names that escape alike ("a.b"."c" and "a"."b.c") get a number.
            var n = 2
            while !usedFiles.insert(file).inserted {
                file = "\(BagNames.fileComponent(schema)).\(BagNames.fileComponent(table))~\(n).csv"
                n += 1
            }
            var load: String? = nil
            if let name = r[3], let columns = r[4], r[5] == "f" {
                load = "COPY \(name) (\(columns)) FROM stdin WITH (FORMAT csv, HEADER true);\n"
            }
            tables.append((schema, table, file, load))
        }
        // pg_dump's patterns: a double-quoted part is literal ("" is a quote).
        let excluded = tables.filter { $0.load != nil }.map {
            "--exclude-table-data=" + Self.ident($0.schema) + "." + Self.ident($0.table)
        }
        try startDump(["--section=data", "--section=post-data"] + excluded, snapshot: snapshot, to: "dump-rest.sql")
        copier = TableCopier(dsn: dsn, snapshot: snapshot, tables: tables.map { ($0.schema, $0.table) }, spoolDirectory: spoolDirectory)
    }

    deinit {
        // An export that failed before finish(): its dumps and copies are of no use, and must not
        // outlive it.
        copier?.cancel()
        for d in dumps {
            kill(d.pid, SIGTERM)
            _ = Spawn.wait(d.pid)
        }
    }

    /// Waits for the dumps and the table copies; archives schema.sql, the CSV files, then dump.sql
    /// assembled from pg_dump's parts and the CSV files.
    func finish(into bag: BagWriter) throws -> DatabaseSummary {
        let mtime = bag.mtime
        for name in ["schema.sql", "dump-pre.sql", "dump-rest.sql"] {
            let d = dumps.removeFirst()
            precondition(d.name == name, "pg_dumps are started in this order")
            try waitDump(d.name, pid: d.pid)
        }
        _ = try bag.addFile(Array("data/database/schema.sql".utf8), contentsOf: spool("schema.sql"), mode: 0o644, mtime: mtime)
        unlink(spool("schema.sql"))

        // dump.sql's parts, in order: spool files and short texts.
        var parts: [BagWriter.Part] = [.file(spool("dump-pre.sql"))]
        var spools: [String] = [spool("dump-pre.sql"), spool("dump-rest.sql")]
        defer { for path in spools { unlink(path) } }
        for (i, t) in tables.enumerated() {
            let copied = try copier.wait(i)
            spools.append(copied.path)
            let w = try bag.addFile(Array("data/database/tables/\(t.file)".utf8), contentsOf: copied.path, mode: 0o644, mtime: mtime)
            summary.tables.append(TableSummary(schema: t.schema, table: t.table, file: t.file, rows: copied.rows, bytes: w.delivered))
            guard let load = t.load else { continue }  // its rows are in dump-rest.sql
            if copied.endMarkerLine {
                // psql would take that line for the end of the COPY: this table's rows come from
                // pg_dump instead, on the same snapshot (still held by `conn`).
                let name = "dump-table-\(i).sql"
                spools.append(spool(name))
                try startDump(["--section=data", "--table=" + Self.ident(t.schema) + "." + Self.ident(t.table)], snapshot: snapshot, to: name)
                let d = dumps.removeLast()
                try waitDump(d.name, pid: d.pid)
                parts.append(.file(spool(name)))
            } else {
                parts += [.text(Array(load.utf8)), .file(copied.path), .text(Array("\\.\n\n".utf8))]
            }
        }
        parts.append(.file(spool("dump-rest.sql")))
        _ = try bag.addFile(Array("data/database/dump.sql".utf8), parts: parts, mode: 0o644, mtime: mtime)
        try conn.query("COMMIT")
        return summary
    }

    private func spool(_ name: String) -> String { spoolDirectory + "/" + name }

    /// Quotes an identifier for SQL.
    static func ident(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// COPY of one table into a spool file; returns its row count (libpq hands COPY OUT over one
    /// row per message, the header being the first) and whether a value holds a line that is
    /// exactly `\.` (see ``hasEndMarkerLine(_:)``). Rows are gathered in `buffer` and written
    /// when it is full: one write per row cost more CPU than the copy itself on large tables.
    static func copyTable(
        _ conn: PGConnection, schema: String, table: String, to path: String,
        buffer: UnsafeMutableRawBufferPointer
    ) throws -> (rows: Int64, endMarkerLine: Bool) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ExportError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var used = 0
        var endMarkerLine = false
        func flush() throws {
            if !endMarkerLine { endMarkerLine = hasEndMarkerLine(UnsafeRawBufferPointer(rebasing: buffer[0..<used])) }
            let err = writeFully(fd: fd, UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
            guard err == 0 else { throw ExportError(.io, "cannot write \(path): \(String(cString: strerror(err)))") }
            used = 0
        }
        let sql = "COPY (SELECT * FROM ONLY \(ident(schema)).\(ident(table))) TO STDOUT WITH (\(copyOptions))"
        try conn.send(sql)
        var messages: Int64 = 0
        var sawCopy = false
        while true {
            switch try conn.next() {
            case .copyOut:
                sawCopy = true
                while try conn.copyData({ row in
                    messages += 1
                    if used + row.count > buffer.count { try flush() }
                    if row.count > buffer.count {
                        // A row larger than the buffer goes out on its own.
                        if !endMarkerLine { endMarkerLine = hasEndMarkerLine(row) }
                        let err = writeFully(fd: fd, row)
                        guard err == 0 else { throw ExportError(.io, "cannot write \(path): \(String(cString: strerror(err)))") }
                        return
                    }
                    (buffer.baseAddress! + used).copyMemory(from: row.baseAddress!, byteCount: row.count)
                    used += row.count
                }) {}
                try flush()
            case .rows:
                continue
            case .done:
                guard sawCopy else { throw ExportError(.database, "copy of \(schema).\(table) returned no data stream") }
                return (max(0, messages - 1), endMarkerLine)
            }
        }
    }

    private func dumpArguments(snapshot: String, to name: String) -> [String] {
        ["--dbname=" + dsn, "--snapshot=" + snapshot, "--no-owner", "--encoding=UTF8", "--no-password", "--file=" + spool(name)]
    }

    /// Whether whole CSV rows hold a line that is exactly `\.` (ending in LF or CR LF): psql, reading
    /// COPY data from a script, ends the data at such a line even inside a quoted CSV value.
    /// PostgreSQL quotes a value that is `\.` alone, so such a line can only follow a line break
    /// inside a quoted value of the same row: every match is a backslash right after a LF. Rows are
    /// never split between two calls, so no match straddles them.
    static func hasEndMarkerLine(_ rows: UnsafeRawBufferPointer) -> Bool {
        guard let base = rows.baseAddress else { return false }
        let end = base + rows.count
        var p = base
        while p < end, let hit = memchr(p, 0x5C, end - p) {
            let b = UnsafeRawPointer(hit)
            p = b + 1
            guard b > base, b.load(fromByteOffset: -1, as: UInt8.self) == 0x0A, end - b >= 3,
                b.load(fromByteOffset: 1, as: UInt8.self) == 0x2E
            else { continue }
            let next = b.load(fromByteOffset: 2, as: UInt8.self)
            if next == 0x0A || (next == 0x0D && end - b >= 4 && b.load(fromByteOffset: 3, as: UInt8.self) == 0x0A) { return true }
        }
        return false
    }

    /// Starts pg_dump on the exported snapshot, writing a spool file.
    private func startDump(_ extra: [String], snapshot: String, to name: String) throws {
        let args = dumpArguments(snapshot: snapshot, to: name) + extra
        dumps.append((name, try Spawn.start(binDirectory + "/pg_dump", args, stderr: spool(name + ".err"))))
    }

    /// Waits for a pg_dump; throws with its first error line when it failed.
    private func waitDump(_ name: String, pid: pid_t) throws {
        let err = spool(name + ".err")
        defer { unlink(err) }
        let status = Spawn.wait(pid)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").first.map(String.init) ?? "no message"
            throw ExportError(
                .database, "pg_dump for \(name) exited \(status): \(redactDSN(line))",
                hint: "check that \(binDirectory)/pg_dump is of the server's major version or newer")
        }
    }
}

/// Copies tables, in order, into spool files on a thread of its own: one connection whose
/// transaction joins the exported snapshot (`SET TRANSACTION SNAPSHOT`), so the copies run while
/// the documents and dumps stream into the archive, and still show the snapshot's moment. Each
/// table's file waits on disk until it is archived: extra disk use can reach the whole database's
/// CSV size. ``cancel()`` stops it after the table it is copying.
final class TableCopier: @unchecked Sendable {
    private let condition = NSCondition()
    /// Finished tables, by index; guarded by `condition`.
    private var finished: [Int: (rows: Int64, path: String, endMarkerLine: Bool)] = [:]
    private var failure: Error?
    private var cancelled = false

    init(dsn: String, snapshot: String, tables: [(schema: String, table: String)], spoolDirectory: String) {
        let thread = Thread { [self] in
            do {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
                defer { buffer.deallocate() }
                let conn = try LiveDatabaseExport.connect(dsn)
                try conn.query("SET TRANSACTION SNAPSHOT '\(snapshot.replacingOccurrences(of: "'", with: "''"))'")
                for (i, t) in tables.enumerated() {
                    condition.lock()
                    let stop = cancelled
                    condition.unlock()
                    if stop { return }
                    let path = spoolDirectory + "/table-\(i).csv"
                    let copied = try LiveDatabaseExport.copyTable(conn, schema: t.schema, table: t.table, to: path, buffer: buffer)
                    condition.lock()
                    finished[i] = (copied.rows, path, copied.endMarkerLine)
                    condition.broadcast()
                    condition.unlock()
                }
                try conn.query("COMMIT")
            } catch {
                condition.lock()
                failure = error
                condition.broadcast()
                condition.unlock()
            }
        }
        thread.name = "tresor-export-copy"
        thread.start()
    }

    /// Stops the copier after the table it is copying (its thread holds it until then).
    func cancel() {
        condition.lock()
        cancelled = true
        condition.unlock()
    }

    /// Waits until table `index` is copied; returns its row count, spool file, and whether a value
    /// holds a line that is exactly `\.`.
    func wait(_ index: Int) throws -> (rows: Int64, path: String, endMarkerLine: Bool) {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let done = finished[index] { return done }
            if let failure { throw failure }
            condition.wait()
        }
    }
}
