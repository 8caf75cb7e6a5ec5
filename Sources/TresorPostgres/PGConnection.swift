import CLibpq
import Foundation
import TresorCore

/// A narrow libpq client: what Tresor needs (simple queries, replication commands, COPY OUT),
/// not a general-purpose driver. It owns its `PGconn` and closes it in `deinit`; every libpq
/// failure becomes a ``PostgresError`` in ``failure(_:)``. Calls block the calling thread: use it
/// from a dedicated thread, never from Swift's cooperative pool.
public final class PGConnection {
    private let conn: OpaquePointer

    /// Connects with a conninfo string or URI. `replication` adds `replication=database`, which
    /// allows replication commands (BASE_BACKUP, IDENTIFY_SYSTEM) and plain SQL on one connection.
    public init(dsn: String, replication: Bool = false) throws {
        var keys: [String] = ["dbname", "fallback_application_name"]
        var values: [String] = [dsn, "tresor"]
        if replication {
            keys.append("replication")
            values.append("database")
        }
        let c: OpaquePointer? = withCStrings(keys) { k in
            withCStrings(values) { v in PQconnectdbParams(k, v, 1) }
        }
        guard let c else { throw PostgresError(.server, "cannot allocate a libpq connection") }
        conn = c
        if PQstatus(c) != CONNECTION_OK {
            throw failure("cannot connect to \(redactDSN(dsn))", hint: "check the tenant's --pg DSN and the server's pg_hba.conf")
        }
    }

    deinit { PQfinish(conn) }

    /// Turns the connection's current error into a ``PostgresError``: the one place libpq errors
    /// become Swift errors. The text is libpq's first line, which never holds the password.
    func failure(_ what: String, hint: String? = nil) -> PostgresError {
        let raw = String(cString: PQerrorMessage(conn))
        let line = raw.split(separator: "\n").first.map { String($0) } ?? "unknown error"
        return PostgresError(.server, "\(what): \(line.trimmingCharacters(in: .whitespaces))", hint: hint)
    }

    /// Runs one statement (SQL or a replication command) and returns its rows as text (NULL as nil).
    @discardableResult
    public func query(_ sql: String) throws -> [[String?]] {
        guard let res = PQexec(conn, sql) else { throw failure("query failed") }
        defer { PQclear(res) }
        return try rows(res, sql: sql)
    }

    private func rows(_ res: OpaquePointer, sql: String) throws -> [[String?]] {
        let status = PQresultStatus(res)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            let msg = String(cString: PQresultErrorMessage(res)).split(separator: "\n").first.map(String.init) ?? "error"
            throw PostgresError(.server, "\(sql.split(separator: " ").prefix(2).joined(separator: " ").lowercased()) failed: \(msg)")
        }
        var out: [[String?]] = []
        let n = PQntuples(res), f = PQnfields(res)
        for r in 0..<n {
            var row: [String?] = []
            for c in 0..<f {
                row.append(PQgetisnull(res, r, c) != 0 ? nil : String(cString: PQgetvalue(res, r, c)))
            }
            out.append(row)
        }
        return out
    }

    /// One step of a command that returns several results and a COPY OUT stream (BASE_BACKUP).
    public enum Step {
        case rows([[String?]])
        case copyOut
        case done
    }

    /// Sends a command without waiting; follow with ``next()``.
    public func send(_ command: String) throws {
        guard PQsendQuery(conn, command) == 1 else { throw failure("cannot send command") }
    }

    /// The next result of the command sent with ``send(_:)``.
    public func next() throws -> Step {
        guard let res = PQgetResult(conn) else { return .done }
        defer { PQclear(res) }
        if PQresultStatus(res) == PGRES_COPY_OUT { return .copyOut }
        return .rows(try rows(res, sql: "command"))
    }

    /// Reads one CopyData message of a COPY OUT into `body` (valid only during the call). Returns
    /// false when the copy ended.
    public func copyData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        var buffer: UnsafeMutablePointer<CChar>? = nil
        let n = PQgetCopyData(conn, &buffer, 0)
        if n == -1 { return false }
        if n < -1 { throw failure("copy failed") }
        defer { PQfreemem(buffer) }
        try body(UnsafeRawBufferPointer(start: buffer, count: Int(n)))
        return true
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { for p in copies { free(p) } }
    var pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
