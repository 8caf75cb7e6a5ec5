import Foundation
import TresorCore
import TresorCrypto

#if canImport(Glibc)
import Glibc
#endif

/// A signed, expiring link to one published export: `/d/TENANT/FILE?exp=UNIX&id=HEX&sig=HEX`.
///
/// The signature is HMAC-SHA-256 under the home's link key (`HOME/keys/links.key`) over
/// `tresor-export-link-v1`, tenant, file, expiry and link id, one per line. Tenant names and
/// published file names hold no line break (both are checked), so the message is unambiguous: a
/// link for one tenant's file cannot be turned into a link for another's.
public struct ExportLink: Sendable, Equatable {
    public let tenant: TenantID
    public let file: String
    /// Unix seconds after which the link no longer works.
    public let expires: Int64
    /// 32 hex digits, random; what `revoke` lists and the access log records.
    public let id: String
    /// 64 hex digits.
    public let signature: String

    /// The link's path and query (no scheme or host): what `tresor serve` answers.
    public var path: String {
        "/d/\(Self.escape(tenant.rawValue))/\(Self.escape(file))?exp=\(expires)&id=\(id)&sig=\(signature)"
    }

    /// The same link's access-log route: the tenant's download attempts as JSON lines.
    public var accessLogPath: String {
        "/access-log/\(Self.escape(tenant.rawValue))/\(Self.escape(file))?exp=\(expires)&id=\(id)&sig=\(signature)"
    }

    public init(tenant: TenantID, file: String, expires: Int64, id: String, signature: String) {
        self.tenant = tenant
        self.file = file
        self.expires = expires
        self.id = id
        self.signature = signature
    }

    /// A published file name: one path component, UTF-8, no control characters, not starting
    /// with `.` (the digest caches next to each export are dot files), at most 255 bytes.
    public static func isPublishableName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 255, !name.hasPrefix("."), !name.contains("/") else { return false }
        return !name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
    }

    /// Reads a link from its full URL or its path (`/d/T/F?exp=..&id=..&sig=..`); nil when it is
    /// not shaped like one. Says nothing about the signature: see ``ExportLinkSigner/verify(_:now:)``.
    public static func parse(_ text: String) -> ExportLink? {
        var rest = Substring(text)
        if let scheme = rest.range(of: "://") {
            rest = rest[scheme.upperBound...]
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            rest = rest[slash...]
        }
        let parts = rest.split(separator: "?", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        let segments = parts[0].split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count == 4, segments[0].isEmpty, segments[1] == "d" || segments[1] == "access-log",
            let tenant = segments[2].removingPercentEncoding, let file = segments[3].removingPercentEncoding
        else { return nil }
        return from(tenant: tenant, file: file, query: String(parts[1]))
    }

    /// A link from its decoded path parts and raw query; nil when anything is missing or malformed
    /// (a tenant segment that is no ``TenantID`` included).
    public static func from(tenant text: String, file: String, query: String) -> ExportLink? {
        var fields: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        // A malformed tenant name makes the whole link malformed (nil), like every other part.
        guard let tenant = try? TenantID(text), isPublishableName(file),
            let e = fields["exp"], let expires = Int64(e),
            let id = fields["id"], id.count == 32, id.allSatisfy(\.isHexDigit),
            let sig = fields["sig"], sig.count == 64, sig.allSatisfy(\.isHexDigit)
        else { return nil }
        return ExportLink(tenant: tenant, file: file, expires: expires, id: id.lowercased(), signature: sig.lowercased())
    }

    static func escape(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}

/// Signs and checks ``ExportLink``s under one key. Sendable: it keeps the key bytes and makes
/// an HMAC context per call (one OpenSSL allocation; links are checked once per request).
public struct ExportLinkSigner: Sendable {
    private let key: [UInt8]

    public init(key: [UInt8]) { self.key = key }

    /// A new link for `file` of `tenant`, valid until `expires`, with a fresh random id.
    public func sign(tenant: TenantID, file: String, expires: Int64) -> ExportLink {
        let id = Hex.encode(SecureRandom.bytes(16))
        return ExportLink(
            tenant: tenant, file: file, expires: expires, id: id,
            signature: mac(tenant: tenant, file: file, expires: expires, id: id).hex)
    }

    public enum Verdict: Sendable, Equatable { case valid, forged, expired }

    /// Whether the link's signature is this key's (compared in constant time) and it has not
    /// expired at `now`. Revocation is checked separately (``Installation/revokedExportLinks()``).
    public func verify(_ link: ExportLink, now: Date) -> Verdict {
        guard let given = ObjectID(hex: link.signature) else { return .forged }
        let expected = mac(tenant: link.tenant, file: link.file, expires: link.expires, id: link.id)
        guard constantTimeEquals(given.bytes, expected.bytes) else { return .forged }
        return Double(link.expires) > now.timeIntervalSince1970 ? .valid : .expired
    }

    private func mac(tenant: TenantID, file: String, expires: Int64, id: String) -> ObjectID {
        let message = Array("tresor-export-link-v1\n\(tenant.rawValue)\n\(file)\n\(expires)\n\(id)".utf8)
        return HMACSHA256(key: key).mac(message)
    }
}

/// The SHA-256 and size of a published export, cached in `.FILE.sha256` next to it
/// (`HEX SIZE MTIME_NS`) so a server computes it at most once per file version.
public enum ExportDigest {
    public struct Value: Sendable, Equatable {
        public let sha256: String
        public let size: Int64
    }

    /// The cached digest when the cache matches the file's size and modification time, else the
    /// file's digest read in 1 MiB pieces (then cached). Throws when the file cannot be read; a
    /// cache that cannot be written is reported by throwing too (the next call would pay again).
    public static func of(_ file: URL) throws -> Value {
        var st = stat()
        guard stat(file.path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw CoreError.failed("cannot read \(file.path): \(String(cString: strerror(errno)))")
        }
        let stamp = "\(st.st_size) \(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))"
        let cache = cacheURL(for: file)
        if let text = try? String(contentsOf: cache, encoding: .utf8) {
            // A missing or unreadable cache only costs one more pass over the file.
            let fields = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ", maxSplits: 1)
            if fields.count == 2, fields[0].count == 64, String(fields[1]) == stamp {
                return Value(sha256: String(fields[0]), size: Int64(st.st_size))
            }
        }
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CoreError.failed("cannot open \(file.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let hasher = SHA256Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw CoreError.failed("cannot read \(file.path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        let hex = hasher.finalize().hex
        try write(sha256: hex, stamp: stamp, for: file)
        return Value(sha256: hex, size: Int64(st.st_size))
    }

    /// Records a digest already known (the export computed it while writing) for `file`.
    public static func record(sha256: String, for file: URL) throws {
        var st = stat()
        guard stat(file.path, &st) == 0 else { throw CoreError.failed("cannot stat \(file.path): \(String(cString: strerror(errno)))") }
        try write(sha256: sha256, stamp: "\(st.st_size) \(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))", for: file)
    }

    static func cacheURL(for file: URL) -> URL {
        file.deletingLastPathComponent().appendingPathComponent(".\(file.lastPathComponent).sha256")
    }

    private static func write(sha256: String, stamp: String, for file: URL) throws {
        do {
            try Data("\(sha256) \(stamp)\n".utf8).write(to: cacheURL(for: file), options: .atomic)
        } catch {
            throw CoreError.failed("cannot write the digest cache next to \(file.path): \(error)")
        }
    }
}

extension Home {
    /// `HOME/exports`: published exports (`exports/T/FILE`), the revoked link ids
    /// (`exports/revoked-links`) and the download access log (`exports/access.jsonl`).
    public var exports: URL { root.appendingPathComponent("exports") }
    public func exports(of tenant: TenantID) -> URL { exports.appendingPathComponent(tenant.rawValue) }
    public var revokedLinks: URL { exports.appendingPathComponent("revoked-links") }
    public var accessLog: URL { exports.appendingPathComponent("access.jsonl") }
    /// `HOME/keys/links.key`: 64 hex digits, mode 0600, the HMAC key of download links.
    public var linkKey: URL { root.appendingPathComponent("keys/links.key") }
}

extension Installation {
    /// Where `tresor export T --publish --out NAME` writes, and what `tresor serve` serves.
    /// Creates `HOME/exports/T` (0700) when missing.
    public func publishedExportPath(tenant id: TenantID, file: String) throws -> URL {
        let name = id.rawValue
        _ = try tenant(id)
        guard ExportLink.isPublishableName(file) else {
            throw CoreError.usage(
                "'\(file)' is not a name a published export can have",
                hint: "give one file name (no '/', not starting with '.'), e.g. --publish --out \(name).tar.zst")
        }
        let dir = home.exports(of: id)
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CoreError.failed("cannot create \(dir.path): \(error)")
        }
        return dir.appendingPathComponent(file)
    }

    /// The link signing key from `HOME/keys/links.key`, created (32 random bytes, 0600) when
    /// missing. A key file others can read is refused, like the master key.
    public func exportLinkSigner(create: Bool) throws -> ExportLinkSigner {
        ExportLinkSigner(key: try ExportLinkKey.load(home.linkKey, create: create).bytes)
    }

    /// `tresor export link T FILE [--expires D]`: a signed link to a published export, valid for
    /// `lifetime` (the policy's `exports.link_lifetime` when nil). Also makes sure the file's
    /// digest is cached, so the first download does not wait for a pass over the file.
    public func makeExportLink(tenant id: TenantID, file: String, lifetime: PolicyDuration?) throws -> (ExportLink, ExportDigest.Value) {
        let name = id.rawValue
        let path = try publishedExportPath(tenant: id, file: file)
        guard FileManager.default.fileExists(atPath: path.path) else {
            throw CoreError.usage(
                "tenant '\(name)' has no published export '\(file)' (looked for \(path.path))",
                hint: "tresor export \(name) --publish --out \(file)")
        }
        let digest = try ExportDigest.of(path)
        let life = lifetime ?? policy.exports.linkLifetime
        let expires = Int64((clock.now().timeIntervalSince1970 + life.seconds).rounded(.up))
        return (try exportLinkSigner(create: true).sign(tenant: id, file: file, expires: expires), digest)
    }

    /// `tresor export revoke LINK`: adds the link's id to `HOME/exports/revoked-links`. Only a
    /// link this home signed is accepted (a mistyped link would otherwise revoke nothing, silently).
    public func revokeExportLink(_ text: String) throws -> ExportLink {
        guard let link = ExportLink.parse(text) else {
            throw CoreError.usage("'\(text)' is not a download link", hint: "pass the link tresor export link printed")
        }
        guard try exportLinkSigner(create: false).verify(link, now: Date.distantPast) != .forged else {
            throw CoreError.usage("that link was not signed by this home's link key", hint: "pass the link tresor export link printed")
        }
        try FileManager.default.createDirectory(at: home.exports, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = Glibc.open(home.revokedLinks.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError.failed("cannot open \(home.revokedLinks.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let line = Array("\(link.id)\n".utf8)
        let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == line.count, fsync(fd) == 0 else {
            throw CoreError.failed("cannot write \(home.revokedLinks.path): \(String(cString: strerror(errno)))")
        }
        return link
    }
}

/// The revoked link ids of a home, read from `HOME/exports/revoked-links`.
public enum RevokedExportLinks {
    /// The ids; empty when no link was ever revoked. Throws when the file exists but cannot be
    /// read, so a server never treats an unreadable list as "nothing revoked".
    public static func read(_ home: Home) throws -> Set<String> {
        let url = home.revokedLinks
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let text = try String(contentsOf: url, encoding: .utf8)
        return Set(text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }
}

/// The file that holds the link signing key.
public enum ExportLinkKey {
    /// Reads the key at `url`, creating it first when it is missing and `create` is set.
    ///
    /// The key appears whole or not at all: it is written and synced under a temporary name, then
    /// linked to its name, which fails when another process got there first (`tresor serve` and
    /// `tresor export link` started together both create it); the loser reads the winner's key.
    /// A plain `O_EXCL` create followed by the write let a concurrent reader see an empty file,
    /// which it refused as "not 64 hex digits".
    public static func load(_ url: URL, create: Bool) throws -> ObjectID {
        if !FileManager.default.fileExists(atPath: url.path) {
            guard create else {
                throw CoreError.usage("there is no link key at \(url.path) yet", hint: "tresor export link T FILE creates it")
            }
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
            let temporary = url.path + ".new-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CoreError.failed("cannot create \(temporary): \(String(cString: strerror(errno)))") }
            defer { unlink(temporary) }
            let text = Array((Hex.encode(SecureRandom.bytes(32)) + "\n").utf8)
            let n = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let ok = n == text.count && fsync(fd) == 0
            close(fd)
            guard ok else { throw CoreError.failed("cannot write \(temporary): \(String(cString: strerror(errno)))") }
            if link(temporary, url.path) != 0 && errno != EEXIST {
                throw CoreError.failed("cannot create \(url.path): \(String(cString: strerror(errno)))")
            }
            let dir = Glibc.open(url.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard dir >= 0, fsync(dir) == 0 else {
                if dir >= 0 { close(dir) }
                throw CoreError.failed("cannot sync \(url.deletingLastPathComponent().path): \(String(cString: strerror(errno)))")
            }
            close(dir)
        }
        var st = stat()
        guard stat(url.path, &st) == 0 else { throw CoreError.failed("cannot stat \(url.path): \(String(cString: strerror(errno)))") }
        guard st.st_mode & 0o077 == 0 else {
            throw CoreError.usage(
                "the link key \(url.path) is readable by other users (mode \(String(st.st_mode & 0o777, radix: 8)))",
                hint: "chmod 600 \(url.path)")
        }
        let text = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let key = ObjectID(hex: text) else {
            throw CoreError.usage(
                "the link key \(url.path) is not 64 hex digits", hint: "restore it from a copy; links signed under it stop working if it changes")
        }
        return key
    }
}
