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
