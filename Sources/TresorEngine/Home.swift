internal import CPosix
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

    /// Refuses a home that other users can read or write (a group or other bit besides
    /// traverse): it holds the master key's file, the catalog and DSN passwords. Traverse-only
    /// (0711) is what `pg setup` leaves so the PostgreSQL OS user reaches its own files.
    public func requireClosed() throws {
        var st = stat()
        guard stat(root.path, &st) == 0 else { return }
        let open = st.st_mode & 0o066
        guard open == 0 else {
            throw CoreError.usage(
                "the home \(root.path) is readable or writable by other users (mode \(String(st.st_mode & 0o777, radix: 8)))",
                hint: "chmod 700 \(root.path)")
        }
    }

    /// Lets another OS user (the PostgreSQL server's) reach `target` and read `readable`, and
    /// nothing else: every directory from `base` (the home unless given; a local store's root for
    /// its WAL directory) down to the target's parent gains only the traverse bit for others
    /// (0711 from 0700), never read. `readable` files and directories become world-readable
    /// (they hold no secret: the config and the policies).
    public func openPath(to targets: [URL], from base: URL? = nil, readable: [URL] = []) throws {
        let top = (base ?? root).standardizedFileURL.path
        for target in targets {
            var dirs: [String] = []
            var current = target.standardizedFileURL.path
            while current.hasPrefix(top) && current != top {
                current = (current as NSString).deletingLastPathComponent
                dirs.append(current)
            }
            for dir in dirs {
                var st = stat()
                guard stat(dir, &st) == 0 else { continue }
                if st.st_mode & 0o001 == 0, st.st_uid == geteuid() {
                    guard chmod(dir, (st.st_mode & 0o7777) | 0o011) == 0 else {
                        throw CoreError.failed("cannot open \(dir) to traverse: \(String(cString: strerror(errno)))")
                    }
                }
            }
        }
        for url in readable {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else { continue }
            let items = isDir.boolValue ? ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).map { url.path + "/" + $0 } : []
            guard chmod(url.path, isDir.boolValue ? 0o755 : 0o644) == 0 else {
                throw CoreError.failed("cannot make \(url.path) readable: \(String(cString: strerror(errno)))")
            }
            for item in items where chmod(item, 0o644) != 0 {
                throw CoreError.failed("cannot make \(item) readable: \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// Makes `dir` shared with group `gid` for everything created below it from now on, whatever the
/// creating process's umask: group `gid` and the setgid bit (new entries take the group), and a
/// default POSIX ACL `u::rwx g::rwx o::---` (with a default ACL, Linux ignores the umask), so a
/// file written there with mode 0644 by one user is 0640 and readable by the other, and a
/// directory 2770. `pg setup` uses it where the operator (umask 077) and the PostgreSQL OS user
/// both write WAL objects of a local store.
public func shareWithGroup(_ dir: String, gid: UInt32) throws {
    func fail(_ what: String) -> CoreError {
        CoreError.failed(
            "cannot share \(dir) with group \(gid): \(what) failed: \(String(cString: strerror(errno)))",
            hint: "the filesystem needs POSIX ACLs (mount option acl), or give the postgresql user its own store directory")
    }
    guard chown(dir, uid_t.max, gid) == 0 else { throw fail("chown") }  // owner unchanged
    var st = stat()
    guard stat(dir, &st) == 0 else { throw fail("stat") }
    guard chmod(dir, (st.st_mode & 0o777) | 0o2070) == 0 else { throw fail("chmod") }
    // The kernel's xattr form of an ACL: version 2, then (tag, perm, id) entries, little endian.
    var acl: [UInt8] = []
    func u16(_ v: UInt16) { acl += [UInt8(v & 0xff), UInt8(v >> 8)] }
    func u32(_ v: UInt32) { acl += [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)] }
    u32(2)
    for (tag, perm) in [(UInt16(0x01), UInt16(7)), (0x04, 7), (0x20, 0)] {  // USER_OBJ, GROUP_OBJ, OTHER
        u16(tag); u16(perm); u32(UInt32.max)
    }
    guard setxattr(dir, "system.posix_acl_default", acl, acl.count, 0) == 0 else { throw fail("setting a default acl") }
}
