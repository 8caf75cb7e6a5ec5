import Foundation
import TresorCore

/// The directory that holds all state of one installation: config, catalog, keys, policies,
/// locks. Two homes never interfere.
///
/// ```
/// HOME/tresor.toml           config (paths relative to HOME)
/// HOME/catalog.sqlite        embedded catalog
/// HOME/keys/master.key       64 hex digits, mode 0600 (unless master_key_command is set)
/// HOME/keys/evidence.key     Ed25519 signing key, 64 hex digits, mode 0600
/// HOME/keys/evidence.pub     its public key, for auditors (the anchor: rotations keep it)
/// HOME/evidence/log.jsonl    the signed, hash-chained evidence log (docs/evidence.md)
/// HOME/policies/*.toml       the policy figures
/// HOME/locks/                per-tenant run locks
/// ```
public struct Home: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root.standardizedFileURL }

    /// `--home`, else `TRESOR_HOME`, else `/var/lib/tresor` for root and
    /// `~/.local/share/tresor` for others.
    public static func resolve(flag: String?, environment: [String: String]) -> Home {
        if let f = flag, !f.isEmpty { return Home(root: URL(fileURLWithPath: f)) }
        if let e = environment["TRESOR_HOME"], !e.isEmpty { return Home(root: URL(fileURLWithPath: e)) }
        if getuid() == 0 { return Home(root: URL(fileURLWithPath: "/var/lib/tresor")) }
        let user = environment["HOME"] ?? NSHomeDirectory()
        return Home(root: URL(fileURLWithPath: user).appendingPathComponent(".local/share/tresor"))
    }

    public var configFile: URL { root.appendingPathComponent("tresor.toml") }
    public var locks: URL { root.appendingPathComponent("locks") }

    /// Resolves a path from the config relative to the home.
    public func path(_ p: String) -> URL {
        p.hasPrefix("/") ? URL(fileURLWithPath: p) : root.appendingPathComponent(p)
    }
}

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

    public static func load(from url: URL) throws -> Config {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw CoreError.usage("cannot read config \(url.path)", hint: "run tresor init, or pass --home / --config")
        }
        let toml = try TOML.parse(text, source: url.path)
        func string(_ key: String) throws -> String? {
            guard let v = toml.value(at: key) else { return nil }
            guard case .string(let s) = v else { throw CoreError.usage("\(url.path): \(key) must be a string") }
            return s
        }
        let master: MasterKeySource
        if let cmd = try string("keys.master_key_command") {
            master = .command(cmd)
        } else if let file = try string("keys.master_key_file") {
            master = .file(file)
        } else {
            throw CoreError.usage("\(url.path): set keys.master_key_file or keys.master_key_command")
        }
        return Config(masterKey: master,
                      evidenceKeyFile: try string("keys.evidence_key_file") ?? "keys/evidence.key",
                      catalogPath: try string("catalog.path") ?? "catalog.sqlite",
                      policiesDirectory: try string("policies.dir") ?? "policies",
                      s3CredentialsFile: try string("s3.credentials_file"))
    }
}
