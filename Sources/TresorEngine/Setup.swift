import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorPostgres
import TresorRepository
import TresorStore

/// What `tresor init` did.
public struct InitResult: Codable, Sendable {
    public var home: String
    public var created: [String]
    public var existing: [String]
    public var evidencePublicKey: String
}

extension Installation {
    /// Creates what is missing in `home`: directories, config, policies, catalog, master key
    /// (0600, never overwritten) and evidence signing key. Safe to run again.
    public static func initialize(home: Home, configFile: URL?) throws -> InitResult {
        let fm = FileManager.default
        var created: [String] = [], existing: [String] = []
        func mkdir(_ url: URL, mode: Int) throws {
            if fm.fileExists(atPath: url.path) { return }
            do {
                try fm.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
            } catch {
                throw CoreError.usage("cannot create \(url.path): \(error.localizedDescription)", hint: "choose another --home")
            }
        }
        /// Writes a new file exclusively; an existing file is kept as it is.
        func create(_ url: URL, _ text: String, mode: mode_t) throws {
            let fd = Glibc.open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            if fd < 0 {
                if errno == EEXIST {
                    existing.append(url.path)
                    return
                }
                throw CoreError.usage("cannot create \(url.path): \(String(cString: strerror(errno)))")
            }
            let bytes = Array(text.utf8)
            let ok = write(fd, bytes, bytes.count) == bytes.count && fsync(fd) == 0
            close(fd)
            guard ok else { throw CoreError.failed("cannot write \(url.path)") }
            created.append(url.path)
        }

        // The home holds keys, the catalog and DSN passwords: owner only. An existing one that
        // others can read is refused rather than quietly filled with secrets.
        if fm.fileExists(atPath: home.root.path) { try home.requireClosed() }
        try mkdir(home.root, mode: 0o700)
        try create(configFile ?? home.configFile, Config.initialText, mode: 0o600)
        let config = try Config.load(from: configFile ?? home.configFile)
        try mkdir(home.root.appendingPathComponent("keys"), mode: 0o700)
        try mkdir(home.locks, mode: 0o700)

        let policies = home.path(config.policiesDirectory)
        try mkdir(policies, mode: 0o700)
        let present = ((try? fm.contentsOfDirectory(atPath: policies.path)) ?? []).filter { $0.hasSuffix(".toml") }
        if let bundled = Policy.bundledDirectory,
            let names = try? fm.contentsOfDirectory(atPath: bundled.path)
        {
            for name in names.sorted() where name.hasSuffix(".toml") {
                let text = try String(contentsOf: bundled.appendingPathComponent(name), encoding: .utf8)
                try create(policies.appendingPathComponent(name), text, mode: 0o600)
            }
        } else if present.isEmpty {
            throw CoreError.failed(
                "cannot find Tresor's default policies next to the executable",
                hint: "copy policies/*.toml from the source tree into \(policies.path)")
        }
        _ = try Policy.load(directory: policies)

        if case .file(let p) = config.masterKey {
            try create(home.path(p), MasterKey.generate().hexForKeyFile + "\n", mode: 0o600)
        }
        let evidenceURL = home.path(config.evidenceKeyFile)
        try create(evidenceURL, Hex.encode(Ed25519PrivateKey().rawRepresentation) + "\n", mode: 0o600)
        guard let evText = try? String(contentsOf: evidenceURL, encoding: .utf8),
            let raw = Hex.decode(evText.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw CoreError.usage("cannot read the evidence key \(evidenceURL.path)")
        }
        let pub = Hex.encode(try Ed25519PrivateKey(rawRepresentation: raw).publicKey.rawRepresentation)
        try create(evidenceURL.deletingPathExtension().appendingPathExtension("pub"), pub + "\n", mode: 0o644)

        if config.catalogDSN != nil {
            // Fleet mode: the shared catalog is created (migrated) by whichever worker opens it first.
            _ = try config.openCatalog(home: home)
            existing.append(config.redactedCatalog)
        } else {
            let catalogURL = home.path(config.catalogPath)
            let existed = fm.fileExists(atPath: catalogURL.path)
            _ = try SQLiteCatalog(path: catalogURL.path)
            (existed ? { existing.append(catalogURL.path) } : { created.append(catalogURL.path) })()
        }
        return InitResult(home: home.root.path, created: created, existing: existing, evidencePublicKey: pub)
    }

    /// `tresor store add`.
    public func addStore(name: String, url: String, region: String) throws -> StoreRecord {
        try Self.validateName(name, what: "store")
        try Self.validateName(region, what: "region")
        _ = try openStore(url: url, create: true)
        let record = StoreRecord(name: name, url: url, region: region, addedAt: clock.now())
        try catalog.addStore(record)
        return record
    }

    /// Where `tenant add --pg-password-stdin` keeps a tenant's database password: a libpq
    /// password file, 0600, that the stored DSN names with `passfile=`.
    func passfile(tenant: TenantID) -> URL { home.root.appendingPathComponent("secrets/pg/\(tenant.rawValue).pgpass") }

    /// The hint for a tenant that lacks a setting only `tenant add` gives (`--docs DIR`,
    /// `--pg DSN`): `tenant add` refuses a tenant that exists, and no command changes one yet,
    /// so the hint says that instead of naming a command that would fail.
    static func addedWithoutHint(_ tenant: TenantID, _ options: String) -> String {
        "\(options) is given when a tenant is added (tresor tenant add \(tenant.rawValue) --region R --store NAME \(options)); no command changes an existing tenant yet"
    }

    /// `tresor tenant add`. `pgDSN` must not carry a password (it would sit in the catalog and
    /// on a command line); `pgPassword` (read from stdin by the CLI) goes to a 0600 libpq
    /// password file under the home instead, else libpq finds one through PGPASSFILE.
    public func addTenant(
        name id: TenantID, region: String, store: String, docs: [String], pgDSN: String?,
        pgPassword: String? = nil, offsite: String? = nil
    ) throws -> TenantRecord {
        let name = id.rawValue
        try Self.validateName(region, what: "region")
        var dsn = pgDSN
        if let pgDSN {
            let info = try ConnInfo(pgDSN)
            guard info.password == nil else {
                throw CoreError.usage(
                    "the --pg connection string carries a password; it is not stored",
                    hint: "remove password= from it and pass the password with --pg-password-stdin, or keep it in a libpq passfile named by PGPASSFILE")
            }
            if pgPassword != nil {
                guard !info.options.contains(where: { $0.keyword == "passfile" }) else {
                    throw CoreError.usage("--pg-password-stdin and a passfile= in the connection string exclude each other")
                }
                dsn = (info.options.map { "\($0.keyword)=\(ConnInfo.quote($0.value))" } + ["passfile=\(ConnInfo.quote(passfile(tenant: id).path))"]).joined(
                    separator: " ")
            }
        } else if pgPassword != nil {
            throw CoreError.usage("--pg-password-stdin needs --pg DSN")
        }
        if let pgPassword {
            guard !pgPassword.isEmpty, !pgPassword.contains(where: \.isNewline) else {
                throw CoreError.usage("the password on standard input is empty or has more than one line")
            }
            guard try catalog.tenant(named: name) == nil else {
                throw CoreError.usage("tenant '\(name)' exists already")
            }
        }
        var roots: [String] = []
        for d in docs {
            let url = URL(fileURLWithPath: d).standardizedFileURL
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
                throw CoreError.usage("document root \(d) does not exist or is not a directory", hint: "create it or fix --docs")
            }
            roots.append(url.path)
        }
        let record = TenantRecord(
            name: name, region: region, store: store, offsiteStore: offsite, pgDSN: dsn,
            docRoots: roots, createdAt: clock.now(), contractEnd: nil, holdReason: nil)
        // Refuse a store outside the region now, not at the first backup.
        _ = try openStore(for: record, create: true)
        if let offsite {
            if offsite == store { throw CoreError.usage("the offsite store must differ from the primary store '\(store)'") }
            _ = try openStore(for: record, storeName: offsite, create: true)
        }
        if let pgPassword {
            let file = passfile(tenant: id)
            try FileManager.default.createDirectory(
                at: file.deletingLastPathComponent(), withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
            // Created 0600 (writeFileAtomically), as libpq requires of a passfile.
            try writeFileAtomically(Array(ConnInfo.passfileLine(password: pgPassword).utf8), to: file.path)
        }
        try catalog.addTenant(record)
        return record
    }

    static func validateName(_ name: String, what: String) throws {
        let ok = !name.isEmpty && name.count <= 64 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        guard ok else { throw CoreError.usage("invalid \(what) name '\(name)': use letters, digits, '-' or '_'") }
    }
}
