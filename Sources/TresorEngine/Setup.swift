import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
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
           let names = try? fm.contentsOfDirectory(atPath: bundled.path) {
            for name in names.sorted() where name.hasSuffix(".toml") {
                let text = try String(contentsOf: bundled.appendingPathComponent(name), encoding: .utf8)
                try create(policies.appendingPathComponent(name), text, mode: 0o600)
            }
        } else if present.isEmpty {
            throw CoreError.failed("cannot find Tresor's default policies next to the executable",
                                   hint: "copy policies/*.toml from the source tree into \(policies.path)")
        }
        _ = try Policy.load(directory: policies)

        if case .file(let p) = config.masterKey {
            try create(home.path(p), MasterKey.generate().hexForKeyFile + "\n", mode: 0o600)
        }
        let evidenceURL = home.path(config.evidenceKeyFile)
        try create(evidenceURL, Hex.encode(Ed25519PrivateKey().rawRepresentation) + "\n", mode: 0o600)
        guard let evText = try? String(contentsOf: evidenceURL, encoding: .utf8),
              let raw = Hex.decode(evText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CoreError.usage("cannot read the evidence key \(evidenceURL.path)")
        }
        let pub = Hex.encode(try Ed25519PrivateKey(rawRepresentation: raw).publicKey.rawRepresentation)
        try create(evidenceURL.deletingPathExtension().appendingPathExtension("pub"), pub + "\n", mode: 0o644)

        let catalogURL = home.path(config.catalogPath)
        let existed = fm.fileExists(atPath: catalogURL.path)
        _ = try SQLiteCatalog(path: catalogURL.path)
        (existed ? { existing.append(catalogURL.path) } : { created.append(catalogURL.path) })()
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

    /// `tresor tenant add`.
    public func addTenant(name: String, region: String, store: String, docs: [String], pgDSN: String?,
                          offsite: String? = nil) throws -> TenantRecord {
        try RepositoryLayout.validate(tenant: name)
        try Self.validateName(region, what: "region")
        var roots: [String] = []
        for d in docs {
            let url = URL(fileURLWithPath: d).standardizedFileURL
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
                throw CoreError.usage("document root \(d) does not exist or is not a directory", hint: "create it or fix --docs")
            }
            roots.append(url.path)
        }
        let record = TenantRecord(name: name, region: region, store: store, offsiteStore: offsite, pgDSN: pgDSN,
                                  docRoots: roots, createdAt: clock.now(), contractEnd: nil, holdReason: nil)
        // Refuse a store outside the region now, not at the first backup.
        _ = try openStore(for: record, create: true)
        if let offsite {
            if offsite == store { throw CoreError.usage("the offsite store must differ from the primary store '\(store)'") }
            _ = try openStore(for: record, storeName: offsite, create: true)
        }
        try catalog.addTenant(record)
        return record
    }

    static func validateName(_ name: String, what: String) throws {
        let ok = !name.isEmpty && name.count <= 64 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        guard ok else { throw CoreError.usage("invalid \(what) name '\(name)': use letters, digits, '-' or '_'") }
    }
}
