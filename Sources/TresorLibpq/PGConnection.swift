internal import CLibpq
import Foundation
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// A narrow libpq client: what Tresor needs (simple queries, replication commands, COPY OUT),
/// not a general-purpose driver. It owns its `PGconn` and closes it in `deinit`; every libpq
/// failure becomes a ``PostgresError`` in ``failure(_:)``. Calls block the calling thread: use it
/// from a dedicated thread, never from Swift's cooperative pool.
public final class PGConnection {
    fileprivate let conn: OpaquePointer

    /// What kind of connection to open.
    public enum Mode: Sendable {
        case sql
        /// `replication=database`: replication commands (BASE_BACKUP, IDENTIFY_SYSTEM) and plain
        /// SQL on one connection.
        case replicationDatabase
        /// `replication=true`: a physical walsender (START_REPLICATION of WAL), what
        /// pg_receivewal opens.
        case physicalReplication
    }

    /// Connects with a conninfo string or URI.
    public init(dsn: String, mode: Mode = .sql, applicationName: String = "tresor") throws {
        var keys: [String] = ["dbname", "fallback_application_name"]
        var values: [String] = [dsn, applicationName]
        switch mode {
        case .sql: break
        case .replicationDatabase:
            keys.append("replication")
            values.append("database")
        case .physicalReplication:
            keys.append("replication")
            values.append("true")
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

    /// Runs one SQL statement with `$1`, `$2`, ... parameters sent apart from the text (never
    /// spliced into it), as text (`nil` is NULL). Returns its rows as text and, for INSERT,
    /// UPDATE and DELETE, how many rows it changed.
    public func execute(_ sql: String, _ parameters: [String?]) throws -> (rows: [[String?]], changed: Int) {
        let copies: [UnsafeMutablePointer<CChar>?] = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { for p in copies { free(p) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        let res = pointers.withUnsafeBufferPointer { p in
            PQexecParams(conn, sql, Int32(parameters.count), nil, p.baseAddress, nil, nil, 0)
        }
        guard let res else { throw failure("query failed") }
        defer { PQclear(res) }
        let rows = try self.rows(res, sql: sql)
        return (rows, Int(String(cString: PQcmdTuples(res))) ?? 0)
    }

    /// The SQLSTATE of the last failed ``execute(_:_:)``'s error, when the server sent one.
    public private(set) var lastSQLState: String?

    fileprivate func rows(_ res: OpaquePointer, sql: String) throws -> [[String?]] {
        let status = PQresultStatus(res)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            lastSQLState = PQresultErrorField(res, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
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
        guard let message = try copyDataOwned() else { return false }
        defer { Self.freeCopyData(message) }
        try body(UnsafeRawBufferPointer(message))
        return true
    }
}

extension PGConnection {
    /// Reads one CopyData message of a COPY OUT and hands over libpq's buffer holding it: the
    /// caller owns it and must give it to ``freeCopyData(_:)`` (on any thread) once done. Nil when the
    /// copy ended. No copy beyond libpq's own: what lets another thread work on the bytes while
    /// this one reads the next message.
    public func copyDataOwned() throws -> UnsafeMutableRawBufferPointer? {
        var buffer: UnsafeMutablePointer<CChar>? = nil
        let n = PQgetCopyData(conn, &buffer, 0)
        if n == -1 { return nil }
        if n < -1 { throw failure("copy failed") }
        return UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(buffer), count: Int(n))
    }

    /// Frees a buffer from ``copyDataOwned()``.
    public static func freeCopyData(_ buffer: UnsafeMutableRawBufferPointer) {
        if let p = buffer.baseAddress { PQfreemem(p) }
    }
}

// MARK: COPY BOTH (streaming replication)

extension PGConnection {
    /// Runs START_REPLICATION (or another command that enters COPY BOTH mode) and switches the
    /// connection to non-blocking reads.
    public func startCopyBoth(_ command: String) throws {
        guard let res = PQexec(conn, command) else { throw failure("cannot send \(command)") }
        defer { PQclear(res) }
        guard PQresultStatus(res) == PGRES_COPY_BOTH else {
            let msg = String(cString: PQresultErrorMessage(res)).split(separator: "\n").first.map(String.init) ?? "error"
            throw PostgresError(.server, "\(command.split(separator: " ").first ?? "") failed: \(msg)")
        }
    }

    /// What one read of a COPY stream gave.
    public enum CopyRead {
        /// A CopyData message (valid only during the body of ``readCopy(timeout:_:)``).
        case message
        /// Nothing arrived within the timeout.
        case idle
        /// The server ended the copy (shutdown, or the end of a timeline).
        case ended
    }

    /// Reads one CopyData message, waiting at most `timeout` seconds for the socket, and hands it
    /// to `body`. Throws when the connection is lost.
    public func readCopy(timeout: Double, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> CopyRead {
        var buffer: UnsafeMutablePointer<CChar>? = nil
        var n = PQgetCopyData(conn, &buffer, 1)
        if n == 0 {
            var pfd = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(0, min(timeout, 3600)) * 1000)
            let ready = poll(&pfd, 1, ms)
            if ready < 0 && errno != EINTR { throw PostgresError(.server, "poll on the replication connection failed: \(String(cString: strerror(errno)))") }
            if ready <= 0 { return .idle }
            guard PQconsumeInput(conn) == 1 else { throw failure("replication connection lost") }
            n = PQgetCopyData(conn, &buffer, 1)
            if n == 0 { return .idle }
        }
        if n == -1 { return .ended }
        if n < -1 { throw failure("replication connection lost") }
        defer { PQfreemem(buffer) }
        try body(UnsafeRawBufferPointer(start: buffer, count: Int(n)))
        return .message
    }

    /// Sends one CopyData message and flushes it to the server.
    public func sendCopy(_ bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { PQputCopyData(conn, $0.baseAddress, Int32($0.count)) }
        }
        guard sent == 1 else { throw failure("cannot send to the replication connection") }
        while true {
            let f = PQflush(conn)
            if f == 0 { return }
            if f < 0 { throw failure("cannot send to the replication connection") }
            var pfd = pollfd(fd: PQsocket(conn), events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, 1000)
        }
    }

    /// After the server ended a copy: the results that follow (for START_REPLICATION at the
    /// end of a timeline, one row with the next timeline and where it starts).
    public func resultsAfterCopy() throws -> [[String?]] {
        var rows: [[String?]] = []
        var copies = 0
        while let res = PQgetResult(conn) {
            defer { PQclear(res) }
            let status = PQresultStatus(res)
            if status == PGRES_TUPLES_OK {
                rows += try self.rows(res, sql: "START_REPLICATION")
            } else if status == PGRES_COPY_BOTH || status == PGRES_COPY_IN {
                // The server sent CopyDone; answer with ours so the command can complete.
                copies += 1
                if copies > 3 { break }
                PQputCopyEnd(conn, nil)
                _ = PQflush(conn)
            } else if status != PGRES_COMMAND_OK && status != PGRES_COPY_OUT {
                let msg = String(cString: PQresultErrorMessage(res)).split(separator: "\n").first.map(String.init) ?? "error"
                throw PostgresError(.server, "replication ended with an error: \(msg)")
            }
        }
        return rows
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { for p in copies { free(p) } }
    var pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
