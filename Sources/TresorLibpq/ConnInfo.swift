internal import CLibpq
import Foundation

/// A libpq connection string read by libpq itself (`PQconninfoParse`), so redaction and the
/// password check see exactly what a connection would use: no quoting trick (`password = 'a b'`,
/// URL userinfo, percent-encoding, `\'` escapes) hides a password from them.
public struct ConnInfo: Sendable {
    /// The options the string sets, in libpq's order, without the ones left unset.
    public let options: [(keyword: String, value: String)]

    /// Parses `dsn` (key=value or `postgresql://` URL). The error never repeats the string.
    public init(_ dsn: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(dsn, &err) else {
            let reason = err.map { String(cString: $0).split(separator: "\n").first.map(String.init) ?? "" } ?? "out of memory"
            if let err { PQfreemem(err) }
            throw PostgresError(
                .usage, "the postgresql connection string cannot be read: \(reason.trimmingCharacters(in: .whitespaces))",
                hint: "use key=value pairs, e.g. host=db1 port=5432 user=backup dbname=postgres")
        }
        defer { PQconninfoFree(parsed) }
        var out: [(String, String)] = []
        var p = parsed
        while let kw = p.pointee.keyword {
            if let v = p.pointee.val { out.append((String(cString: kw), String(cString: v))) }
            p += 1
        }
        options = out
    }

    /// The password the string carries, if any.
    public var password: String? { options.first { $0.keyword == "password" }?.value }

    /// The string rebuilt as key=value pairs with the password replaced by `***`.
    public var redacted: String {
        options.map { "\($0.keyword)=" + ($0.keyword == "password" ? "***" : Self.quote($0.value)) }.joined(separator: " ")
    }

    /// A value quoted for a key=value connection string (single quotes, `\` and `'` escaped).
    public static func quote(_ value: String) -> String {
        let plain = !value.isEmpty && value.allSatisfy { !$0.isWhitespace && $0 != "'" && $0 != "\\" && $0 != "=" }
        if plain { return value }
        return "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// A line of a libpq password file matching every host, port, database and user, for
    /// `password` (`:` and `\` escaped as libpq reads them).
    public static func passfileLine(password: String) -> String {
        "*:*:*:*:" + password.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:") + "\n"
    }
}
