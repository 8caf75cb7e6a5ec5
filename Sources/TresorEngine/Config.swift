import Foundation
import TresorCore

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

    /// Every key `tresor.toml` may hold. A key not listed here is an error naming the file and
    /// line, so a misspelt setting is never silently ignored.
    public static let schema = TOMLSchema([
        "keys.master_key_file": .string,
        "keys.master_key_command": .string,
        "keys.evidence_key_file": .string,
        "catalog.path": .string,
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
        return Config(masterKey: master,
                      evidenceKeyFile: string("keys.evidence_key_file") ?? "keys/evidence.key",
                      catalogPath: string("catalog.path") ?? "catalog.sqlite",
                      policiesDirectory: string("policies.dir") ?? "policies",
                      s3CredentialsFile: string("s3.credentials_file"))
    }
}
