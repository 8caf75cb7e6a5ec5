import Foundation
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// Text for the shell that runs `archive_command` and `restore_command`: `word` as one argument.
/// Words of only safe characters stay as they are (so `%p` and `%f` remain PostgreSQL's to
/// replace); anything else is put in single quotes.
public func shellQuoted(_ word: String) -> String {
    let safe = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./:=@%+,")
    if !word.isEmpty && word.allSatisfy({ safe.contains($0) }) { return word }
    // A quote as '"'"' (close, a double-quoted quote, reopen): no backslash, which
    // postgresql.conf would read as an escape.
    return "'" + word.replacingOccurrences(of: "'", with: #"'"'"'"#) + "'"
}

/// A string value for postgresql.conf: in single quotes, a quote doubled, a backslash escaped.
public func confQuoted(_ value: String) -> String {
    "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''") + "'"
}

/// A restored data directory made ready for point-in-time recovery: the recovery settings
/// appended to `postgresql.auto.conf` (which wins over postgresql.conf), `recovery.signal`,
/// the `pg_wal` directories a base backup leaves out, mode 0700, and (as root) everything
/// Tresor wrote owned by the data directory's owner.
public enum RecoveryDirectory {
    /// `settings` are `postgresql.auto.conf` lines (see ``RecoveryPlanner/recoverySettings``).
    /// `owner`: the uid and gid the files must belong to (nil: leave them to the caller's user).
    public static func prepare(_ dataDirectory: String, settings: String, owner: (uid: uid_t, gid: gid_t)?) throws {
        let conf = dataDirectory + "/postgresql.auto.conf"
        let existing = FileManager.default.contents(atPath: conf).map { Array($0) } ?? []
        try writeFileAtomically(existing + Array(settings.utf8), to: conf)
        try writeFileAtomically([], to: dataDirectory + "/recovery.signal")
        for dir in ["pg_wal", "pg_wal/archive_status"] {
            let path = dataDirectory + "/" + dir
            guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
                throw PostgresError(.failed, "cannot create \(path): \(String(cString: strerror(errno)))")
            }
        }
        chmod(dataDirectory, 0o700)
        chmod(conf, 0o600)
        chmod(dataDirectory + "/recovery.signal", 0o600)
        guard let owner else { return }
        for p in [dataDirectory, conf, dataDirectory + "/recovery.signal", dataDirectory + "/pg_wal", dataDirectory + "/pg_wal/archive_status"] {
            guard lchown(p, owner.uid, owner.gid) == 0 else {
                throw PostgresError(.failed, "cannot give \(p) to uid \(owner.uid): \(String(cString: strerror(errno)))")
            }
        }
    }
}
