import Foundation
import TresorCatalog
import TresorCore
import TresorStore

/// The one way to open a home, for any caller: it finds the config (`--config`, else
/// `HOME/tresor.toml`), reads it and the policies it names, and then hands out one of two
/// capabilities:
/// - ``installation(clock:s3Credentials:)``: the operator's, everything (catalog, master key,
///   every store);
/// - ``walAccess(tenant:clock:environmentCredentials:)``: the `postgres` OS user's, one tenant's
///   WAL archive with the WAL key and WAL-prefix credentials `pg setup` left for it, and nothing
///   else (no catalog, no master key).
public struct HomeOpener: Sendable {
    public let home: Home
    /// The config file given on the command line, when one was.
    public let configFile: URL?
    public let config: Config
    public let policy: Policy

    /// Reads the config and the policies. A home without its config file is refused with the
    /// command that makes one, or, for the PostgreSQL OS user opening `walTenant`'s WAL access
    /// (`archive_command`, `restore_command`), with where to look: that user must never create
    /// a home of its own.
    public init(home: Home, configFile: URL?, walTenant: TenantID? = nil) throws {
        let configURL = configFile ?? home.configFile
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            let message = "no Tresor installation at \(home.root.path) (missing \(configURL.lastPathComponent))"
            if let walTenant {
                throw CoreError.usage(
                    message + ", or this user cannot read it",
                    hint:
                        "give archive_command and restore_command the operator's --home as tresor pg setup \(walTenant.rawValue) prints them (run it as the operator)"
                )
            }
            throw CoreError.usage(message, hint: "tresor --home \(home.root.path) init")
        }
        self.home = home
        self.configFile = configFile
        config = try Config.load(from: configURL)
        policy = try Policy.load(directory: home.path(config.policiesDirectory))
    }

    /// The operator's capability. `s3Credentials` are what the caller read from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; without them S3 stores use
    /// `[s3] credentials_file`.
    /// `traffic` counts the S3 requests of the stores it opens (the command's counter).
    public func installation(
        clock: any Clock, s3Credentials: S3Credentials? = nil,
        traffic: StoreTraffic = StoreTraffic()
    ) throws -> Installation {
        let catalog = try config.openCatalog(home: home)
        let installation = Installation(
            home: home, config: config, catalog: catalog, policy: policy, clock: clock,
            environmentCredentials: s3Credentials, traffic: traffic)
        installation.configFile = configFile
        return installation
    }

    /// The `postgres` OS user's capability for `tenant` (see ``PostgresWALAccess``).
    public func walAccess(
        tenant id: TenantID, clock: any Clock, environmentCredentials: S3Credentials? = nil,
        traffic: StoreTraffic = StoreTraffic()
    ) throws -> PostgresWALAccess {
        try PostgresWALAccess(opener: self, tenant: id, clock: clock, environmentCredentials: environmentCredentials, traffic: traffic)
    }
}
