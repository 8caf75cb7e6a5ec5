import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorRepository
import TresorStore

/// One opened installation: its home, config, catalog, policy and clock. Every job runs against
/// one of these; nothing here reads the environment (the CLI resolved it already).
public final class Installation: @unchecked Sendable {
    public let home: Home
    public let config: Config
    public let catalog: any Catalog
    public let policy: Policy
    public let clock: any Clock
    /// The config file given on the command line (`--config`), when one was: commands written
    /// for PostgreSQL (archive_command, restore_command) must carry it.
    public internal(set) var configFile: URL?
    /// S3 credentials the caller found in the environment; they win over the config's file.
    let environmentCredentials: S3Credentials?
    private let masterKeyCache = Locked<MasterKey?>(nil)
    /// The S3 requests this installation's stores sent (the command's counter, passed in).
    public let traffic: StoreTraffic
    /// Seconds `tick` waits between claiming a job's lease and running it (0: none). For tests
    /// only (`TRESOR_TEST_HOLD_AFTER_CLAIM`): it holds a worker mid-job so a test can kill it.
    public var holdAfterClaim: Double = 0

    init(
        home: Home, config: Config, catalog: any Catalog, policy: Policy, clock: any Clock,
        environmentCredentials: S3Credentials? = nil, traffic: StoreTraffic = StoreTraffic()
    ) {
        self.home = home
        self.config = config
        self.catalog = catalog
        self.policy = policy
        self.clock = clock
        self.environmentCredentials = environmentCredentials
        self.traffic = traffic
    }

    /// How every store of this installation is opened and wrapped (``StoreFactory``).
    public var storeFactory: StoreFactory {
        StoreFactory(credentials: { [self] in try s3Credentials() }, traffic: traffic)
    }

    /// Opens an initialised home. `configFile` overrides `HOME/tresor.toml`. `s3Credentials` are
    /// what the caller read from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (library code never
    /// reads the environment); without them S3 stores use `[s3] credentials_file`.
    /// Same as ``HomeOpener/installation(clock:s3Credentials:)``.
    public static func open(home: Home, configFile: URL?, clock: any Clock, s3Credentials: S3Credentials? = nil) throws -> Installation {
        try HomeOpener(home: home, configFile: configFile).installation(clock: clock, s3Credentials: s3Credentials)
    }

    /// The master key, from its file or command. Read once per process.
    public func masterKey() throws -> MasterKey {
        if let k = masterKeyCache.current { return k }
        let key: MasterKey
        switch config.masterKey {
        case .file(let p):
            let url = home.path(p)
            var st = stat()
            if stat(url.path, &st) == 0, st.st_mode & 0o077 != 0 {
                throw CoreError.usage(
                    "the master key file \(url.path) is readable by other users (mode \(String(st.st_mode & 0o777, radix: 8)))",
                    hint: "chmod 600 \(url.path), and consider the key exposed: rotate it")
            }
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw CoreError.usage(
                    "cannot read the master key file \(url.path)",
                    hint: "restore it from your offline copy, or set keys.master_key_command")
            }
            key = try MasterKey(text: text)
        case .command(let cmd):
            key = try MasterKey(text: try runKeyCommand(cmd))
        }
        masterKeyCache.withLock { $0 = key }
        return key
    }

    private func runKeyCommand(_ command: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do {
            try p.run()
        } catch {
            throw CoreError.usage("cannot run master_key_command", hint: "check keys.master_key_command in tresor.toml")
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw CoreError.usage(
                "master_key_command exited with status \(p.terminationStatus)",
                hint: "check keys.master_key_command in tresor.toml")
        }
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: lookups shared by the jobs

    /// The tenant's catalog row; a tenant that is not there is a usage error (exit 2) whose
    /// hint says whether it was deleted or never added.
    public func tenant(_ id: TenantID) throws -> TenantRecord {
        let name = id.rawValue
        guard let t = try catalog.tenant(named: name) else {
            if let d = try catalog.deletion(tenant: name), d.step > .planned {
                throw CoreError.usage(
                    "tenant '\(name)' was deleted after its contract ended (\(d.step == .certified ? "certified \(TimeFormat.string(d.finishedAt ?? d.startedAt))" : "deletion in progress")): its key envelopes are destroyed and no backup of it can be restored",
                    hint: "tresor evidence list --tenant \(name) --kind deletion")
            }
            throw CoreError.usage("unknown tenant '\(name)'", hint: "tresor tenant list, or tresor tenant add \(name) --region R --store NAME")
        }
        return t
    }

    public func storeRecord(_ name: String) throws -> StoreRecord {
        guard let s = try catalog.store(named: name) else {
            throw CoreError.usage("unknown store '\(name)'", hint: "tresor store add \(name) --url URL --region R")
        }
        return s
    }

    /// Opens the store a tenant's data goes to, refusing one outside the tenant's region unless
    /// an approval is on file (a ``RegionGuardStore``). The refusal happens before any byte is sent.
    public func openStore(for tenant: TenantRecord, storeName: String? = nil, create: Bool) throws -> any Store {
        try openStore(for: tenant, storeName: storeName, create: create, cache: false)
    }

    /// ``openStore(for:storeName:create:)``, with the cache of immutable objects (index objects,
    /// snapshot manifests) under `HOME/cache/<store>/` when `cache` is set. `wrap` goes around
    /// the store inside the cache. `dryRun` puts a ``DryRunStore`` outermost: reads reach the
    /// store, writes and deletes never do.
    func openStore(
        for tenant: TenantRecord, storeName: String?, create: Bool, cache: Bool, dryRun: Bool = false,
        wrap: (any Store) -> any Store = { $0 }
    ) throws -> any Store {
        try openStore(for: tenant, id: try tenant.id, storeName: storeName, create: create, cache: cache, dryRun: dryRun, wrap: wrap)
    }

    /// ``openStore(for:storeName:create:cache:dryRun:wrap:)`` for a caller that already holds
    /// the row's ``TenantRecord/id``.
    func openStore(
        for tenant: TenantRecord, id: TenantID, storeName: String?, create: Bool, cache: Bool, dryRun: Bool = false,
        wrap: (any Store) -> any Store = { $0 }
    ) throws -> any Store {
        let record = try storeRecord(storeName ?? tenant.store)
        let approved =
            try record.region == tenant.region
            || catalog.regionApprovals(tenant: tenant.name).contains { $0.store == record.name }
        let placement = RegionPlacement(
            tenant: id, tenantRegion: tenant.region, store: record.name,
            storeRegion: record.region, approved: approved)
        let layout = RepositoryLayout(tenant: id)
        let cached =
            cache
            ? StoreFactory.Cache(
                directory: home.root.appendingPathComponent("cache/\(record.name)"),
                prefixes: [layout.indexPrefix, layout.snapshotsPrefix]) : nil
        return try storeFactory.open(url: record.url, create: create, placement: placement, cache: cached, dryRun: dryRun, wrap: wrap)
    }

    /// Opens a store by URL with the credentials it needs. No region check: callers that write a
    /// tenant's data go through ``openStore(for:storeName:create:)``.
    func openStore(url: String, create: Bool) throws -> any Store {
        try storeFactory.open(url: url, create: create)
    }

    /// The environment's S3 credentials, else those of `[s3] credentials_file`.
    func s3Credentials() throws -> S3Credentials {
        if let c = environmentCredentials { return c }
        if let file = config.s3CredentialsFile { return try S3Credentials.load(file: home.path(file).path) }
        throw CoreError.usage(
            "no s3 credentials",
            hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or [s3] credentials_file in tresor.toml")
    }

    /// Opens the tenant's repository in its primary store, or in `storeName` (an offsite copy:
    /// `check --store`, `snapshots --store`). For remote stores, index objects and snapshot
    /// manifests (immutable, named by content) are cached under `HOME/cache/<store>/`. `wrap`
    /// may put a wrapper around the store before the cache (check watches for access failures).
    /// With `dryRun` the repository's store is a ``DryRunStore`` (the `--dry-run` of retention):
    /// the code above runs its real path and nothing in the store changes.
    public func repository(
        for tenant: TenantRecord, storeName: String? = nil, create: Bool, dryRun: Bool = false,
        wrap: (any Store) -> any Store = { $0 }
    ) throws -> TenantRepository {
        try repository(for: tenant, id: try tenant.id, storeName: storeName, create: create, dryRun: dryRun, wrap: wrap)
    }

    /// ``repository(for:storeName:create:dryRun:wrap:)`` for a caller that already holds the
    /// tenant's ``TenantID`` (the one its row was looked up with: ``tenant(_:)``).
    func repository(
        for tenant: TenantRecord, id: TenantID, storeName: String? = nil, create: Bool, dryRun: Bool = false,
        wrap: (any Store) -> any Store = { $0 }
    ) throws -> TenantRepository {
        let store = try openStore(for: tenant, id: id, storeName: storeName, create: create, cache: true, dryRun: dryRun, wrap: wrap)
        do {
            return try TenantRepository.open(
                store: store, tenant: id, master: try masterKey(),
                previousMasters: try previousMasterKeys(),
                policy: policy.backup, clock: clock, create: create)
        } catch let e as RepositoryError where e.code == .usage && e.message.hasPrefix("wrong master key") {
            // A key rotation may have swapped the key file since this process read it (a long
            // `tick` or `pg stream`): read it again once before giving up.
            guard case .file = config.masterKey else { throw e }
            masterKeyCache.withLock { $0 = nil }
            return try TenantRepository.open(
                store: store, tenant: id, master: try masterKey(),
                previousMasters: try previousMasterKeys(),
                policy: policy.backup, clock: clock, create: create)
        }
    }
}
