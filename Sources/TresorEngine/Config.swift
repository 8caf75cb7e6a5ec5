import Foundation
import TresorCatalog
import TresorCore
import TresorPostgres

/// The installation's configuration, read once from `tresor.toml` (after flags and environment,
/// before policies and defaults). Immutable.
public struct Config: Sendable {
    /// Where the master key comes from.
    public enum MasterKeySource: Sendable, Equatable {
        case file(String)
        /// A command whose standard output is the key (how a KMS or Vault plugs in).
        case command(String)
    }

    public var masterKey: MasterKeySource
    public var evidenceKeyFile: String
    public var catalogPath: String
    /// `catalog = "postgresql://..."` (top level): the fleet's shared PostgreSQL catalog, used
    /// instead of the SQLite file ``catalogPath``. May hold a password: never print it
    /// (``redactedCatalog``).
    public var catalogDSN: String?
    /// `[fleet] lease`: how long a worker's claim on a due job, or a catalog lock, lasts unless
    /// renewed (every third of it while the worker lives); a killed worker's jobs go to another
    /// worker after it. Default 5 minutes.
    public var leaseSeconds: Double = 300
    public var policiesDirectory: String
    /// An AWS-style credentials file for S3 stores (`[s3] credentials_file`), used when
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set. Relative to the home.
    public var s3CredentialsFile: String?

    /// What `tresor init` writes.
    public static let initialText = """
        # Tresor installation config. Paths are relative to this home directory.

        [keys]
        # The master key wraps every tenant's data key. Keep a copy offline: without it no
        # backup can be read. To take it from a KMS or Vault instead of a file, set
        # master_key_command to a command that prints 64 hex digits, and remove the file.
        master_key_file = "keys/master.key"
        # master_key_command = "vault kv get -field=key secret/tresor/master"
        evidence_key_file = "keys/evidence.key"

        [catalog]
        path = "catalog.sqlite"

        [policies]
        dir = "policies"

        # [s3]
        # S3 stores take credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else
        # from this AWS-style file ([default] aws_access_key_id = ..., aws_secret_access_key = ...).
        # credentials_file = "keys/s3-credentials"

        """

    /// Every key `tresor.toml` may hold. A key not listed here is an error naming the file and
    /// line, so a misspelt setting is never silently ignored.
    public static let schema = TOMLSchema(
        [
            "keys.master_key_file": .string,
            "keys.master_key_command": .string,
            "keys.evidence_key_file": .string,
            "catalog.path": .string,
            "catalog": .string,
            "fleet.lease": .duration(1...86400),
            "policies.dir": .string,
            "s3.credentials_file": .string,
        ], reference: "the tresor.toml that tresor init writes")

    public static func load(from url: URL) throws -> Config {
        let text = try readText(url, what: "config", hint: "run tresor init, or pass --home / --config")
        let document = try TOML.document(text, source: url.path)
        try schema.validate(document)
        func string(_ key: String) -> String? {
            // The schema check above has made every present key of this schema a string.
            if case .string(let s)? = document.root.value(at: key) { return s }
            return nil
        }
        let master: MasterKeySource
        if let cmd = string("keys.master_key_command") {
            master = .command(cmd)
        } else if let file = string("keys.master_key_file") {
            master = .file(file)
        } else {
            throw CoreError.usage("\(url.path): set keys.master_key_file or keys.master_key_command")
        }
        let dsn = string("catalog")
        if let dsn, !dsn.hasPrefix("postgresql://"), !dsn.hasPrefix("postgres://") {
            throw CoreError.usage(
                "\(url.path): catalog must be a postgresql:// URL (for a SQLite file use [catalog] path)",
                hint: "catalog = \"postgresql://tresor@db1/tresor\"")
        }
        var config = Config(
            masterKey: master,
            evidenceKeyFile: string("keys.evidence_key_file") ?? "keys/evidence.key",
            catalogPath: string("catalog.path") ?? "catalog.sqlite",
            catalogDSN: dsn,
            policiesDirectory: string("policies.dir") ?? "policies",
            s3CredentialsFile: string("s3.credentials_file"))
        if case .string(let text)? = document.root.value(at: "fleet.lease"), let lease = PolicyDuration(text) {
            config.leaseSeconds = lease.seconds
        }
        return config
    }
}

extension Config {
    /// The catalog this config names: the PostgreSQL catalog of ``catalogDSN`` when set, else
    /// the SQLite file ``catalogPath`` in `home` (created if missing). Either is migrated to the
    /// schema this build writes.
    public func openCatalog(home: Home) throws -> any Catalog {
        if let catalogDSN { return try PostgresCatalog(dsn: catalogDSN) }
        return try SQLiteCatalog(path: home.path(catalogPath).path)
    }

    /// The catalog as it may be printed: the SQLite path, or the DSN without its password.
    public var redactedCatalog: String {
        catalogDSN.map(redactDSN) ?? catalogPath
    }
}
