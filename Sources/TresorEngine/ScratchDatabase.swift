import Foundation
import TresorCore
import TresorPostgres

#if canImport(Glibc)
import Glibc
#endif

/// How Tresor gets into a restored copy of a tenant's cluster that it runs itself (a drill's, an
/// export's): the copy's own access rule and its bootstrap superuser.
enum ScratchDatabase {
    /// Replaces the copy's pg_hba.conf with one line: the unix socket only, in a directory only
    /// the server's user and root reach, without a password. The production pg_hba.conf (which
    /// Tresor cannot assume to let it in) stays in the backup, untouched. `by` names the writer.
    static func allowLocalOnly(pgdata: String, by: String) throws {
        let hba = pgdata + "/pg_hba.conf"
        var st = stat()
        guard stat(pgdata, &st) == 0 else {
            throw CoreError.failed("cannot read \(pgdata): \(String(cString: strerror(errno)))")
        }
        try "# written by \(by): scratch copy, unix socket only\nlocal all all trust\n"
            .write(toFile: hba, atomically: false, encoding: .utf8)
        if getuid() == 0 { chown(hba, st.st_uid, st.st_gid) }
    }

    /// A libpq DSN for the scratch server's unix socket.
    static func dsn(_ server: RecoveryServer, user: String, database: String) -> String {
        "host=\(ConnInfo.quote(server.socketDirectory)) port=\(server.port) user=\(ConnInfo.quote(user)) dbname=\(ConnInfo.quote(database)) connect_timeout=30"
    }

    /// Connects as the cluster's bootstrap superuser (role oid 10): tried as `postgres`, then as
    /// the user of the tenant's DSN, whose session finds the bootstrap role's name. Returns that
    /// role's name and the connection.
    static func connectAsSuperuser(_ server: RecoveryServer, tenantDSN: String?, database: String) throws -> (String, PGConnection) {
        var candidates = ["postgres"]
        if let u = tenantDSN.flatMap({ option("user", of: $0) }), u != "postgres" { candidates.append(u) }
        var lastError: Error = CoreError.failed("no role to connect as")
        for u in candidates {
            do {
                let c = try PGConnection(dsn: dsn(server, user: u, database: database))
                let boot = try c.query("SELECT rolname FROM pg_roles WHERE oid = 10").first?.first ?? nil
                guard let boot, boot != u else { return (u, c) }
                return (boot, try PGConnection(dsn: dsn(server, user: boot, database: database)))
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// One keyword's value in a DSN; nil when it is not there or the DSN cannot be read (the
    /// callers then fall back to PostgreSQL's own default for it).
    static func option(_ keyword: String, of dsn: String) -> String? {
        guard let info = try? ConnInfo(dsn) else { return nil }
        return info.options.last(where: { $0.keyword == keyword })?.value
    }
}
