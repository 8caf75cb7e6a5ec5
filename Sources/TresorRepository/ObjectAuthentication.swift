import Foundation
import TresorCore
import TresorCrypto

/// Checks that one stored object of a tenant is what its key says it is, by the object's kind:
///
/// | key | check |
/// | --- | --- |
/// | `data/..` pack | SHA-256 of the bytes equals the name; the sealed header authenticates and its blobs tile the pack |
/// | `index/<id>` | SHA-256 equals the name; authenticates as an index object and parses |
/// | `snapshots/<id>` | authenticates as a snapshot; SHA-256 of the manifest equals the name; parses |
/// | `keys/<id>` | a key envelope of this tenant with this id that the master key opens |
/// | `config` | a tenant config of this tenant |
/// | `wal/<tl>/<name>` | authenticates under the WAL key, bound to its file name; content matches its keyed hash |
///
/// Anything else under the tenant's prefix is not a Tresor object and fails. Used by
/// `replicate` before copying and by `check` for envelopes and config. Costs one decryption of
/// the object (for packs, of the header only).
public struct ObjectAuthenticator: Sendable {
    let layout: RepositoryLayout
    let keys: TenantKeys
    let masters: [MasterKey]

    /// `masters`: the installation's master key, then any previous ones (a key rotation in
    /// progress), as ``TenantRepository/open(store:tenant:master:previousMasters:policy:clock:create:)`` takes them.
    public init(repository: TenantRepository, masters: [MasterKey]) {
        self.layout = repository.layout
        self.keys = repository.keys
        self.masters = masters
    }

    /// Throws a ``RepositoryError/Code/corrupt`` error naming `key` when `bytes` are not
    /// the object `key` names, and a `failed` one for an authentic snapshot of a kind this build
    /// does not know (``SnapshotKind``).
    public func authenticate(key: String, bytes: [UInt8]) throws {
        let last = String(key.split(separator: "/").last ?? "")
        func named() throws -> ObjectID {
            guard let id = ObjectID(hex: last) else { throw RepositoryError(.corrupt, "\(key) is not named by an object id") }
            return id
        }
        if key.hasPrefix(layout.packsPrefix) {
            let id = try named()
            guard SHA256.hash(bytes) == id else { throw RepositoryError(.corrupt, "pack \(key) does not match its name (SHA-256)") }
            _ = try PackFormat.readHeader(bytes, keys: keys, name: id.short)
        } else if key.hasPrefix(layout.indexPrefix) {
            let id = try named()
            guard SHA256.hash(bytes) == id else { throw RepositoryError(.corrupt, "index object \(key) does not match its name (SHA-256)") }
            _ = try IndexFile.decode(try SealedObject.open(bytes, kind: .index, keys: keys, name: key), name: key)
        } else if key.hasPrefix(layout.snapshotsPrefix) {
            let id = try named()
            let json = try SealedObject.open(bytes, kind: .snapshot, keys: keys, name: key)
            guard SHA256.hash(json) == id else { throw RepositoryError(.corrupt, "snapshot \(key) does not match its name (SHA-256 of its manifest)") }
            _ = try SnapshotManifest.decode(json, key: key)
        } else if key.hasPrefix(layout.keysPrefix) {
            try Self.authenticateEnvelope(key: key, bytes: bytes, layout: layout, masters: masters)
        } else if key == layout.config {
            try Self.authenticateConfig(bytes, layout: layout)
        } else if key.hasPrefix(layout.walPrefix) {
            _ = try WALObject.open(bytes, name: last, keys: keys.wal)
        } else {
            throw RepositoryError(.corrupt, "\(key) is not a kind of object Tresor stores")
        }
    }

    /// The config check: a tenant config (format, version) of this tenant.
    ///
    /// The config is plaintext; what can be checked without the data key is that it parses,
    /// names no key Tresor does not write (a damaged key name would otherwise be ignored and its
    /// default used), and holds values Tresor can use. A version 3 config's MAC is checked where
    /// the data key is open (``TenantRepository/open``, and `check` after the envelopes); in
    /// versions 1 and 2 a change that leaves every value valid cannot be told from the original.
    public static func authenticateConfig(_ bytes: [UInt8], layout: RepositoryLayout) throws {
        guard let config = try? JSONDecoder().decode(TenantConfig.self, from: Data(bytes)),
            let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
            let chunker = object["chunker"] as? [String: Any]
        else {
            throw RepositoryError(.corrupt, "\(layout.config) is not a valid config of tenant '\(layout.tenant)'")
        }
        // The fields Tresor writes are those the decoded config encodes to again.
        guard let again = try? JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any],
            let chunkerAgain = again["chunker"] as? [String: Any],
            Set(object.keys) == Set(again.keys), Set(chunker.keys) == Set(chunkerAgain.keys)
        else {
            throw RepositoryError(.corrupt, "\(layout.config) has fields Tresor does not write: damaged")
        }
        try config.validate(tenant: layout.tenant, key: layout.config)
        if let mac = config.mac, Hex.decode(mac).map({ Hex.encode($0) }) != mac || mac.count != 64 {
            throw RepositoryError(.corrupt, "\(layout.config) carries its MAC in a form Tresor does not write: damaged")
        }
        if let fingerprint = config.dataKey, Hex.decode(fingerprint).map({ Hex.encode($0) }) != fingerprint {
            throw RepositoryError(.corrupt, "\(layout.config) names its data key in a form Tresor does not write: damaged")
        }
    }

    /// The envelope check; needs only the master keys, so it runs before a repository is opened.
    /// An envelope none of `masters` opens is reported as damage: with the installation's own
    /// key in hand, that is what it is unless the envelope was wrapped under a foreign key.
    /// Returns the data key the envelope wraps.
    @discardableResult
    public static func authenticateEnvelope(key: String, bytes: [UInt8], layout: RepositoryLayout, masters: [MasterKey]) throws -> [UInt8] {
        let id = String(key.dropFirst(layout.keysPrefix.count))
        let envelope = try KeyEnvelope.decode(bytes, key: key)
        // Hex and time fields must be in the form Tresor writes (lowercase hex, a canonical
        // time): the decoders accept more, and a flipped case bit would otherwise go unnoticed.
        func canonicalHex(_ text: String) -> Bool { Hex.decode(text).map { Hex.encode($0) == text } ?? false }
        let created = TimeFormat.parse(envelope.created)
        guard envelope.kdf == "hkdf-sha256", canonicalHex(envelope.salt), canonicalHex(envelope.sealed), let created,
            [TimeFormat.string(created), TimeFormat.string(created, fractional: true)].contains(envelope.created)
        else {
            throw RepositoryError(.corrupt, "key envelope \(key) is not in the form Tresor writes: damaged")
        }
        do {
            return try envelope.unwrap(anyOf: masters, tenant: layout.tenant, id: id)
        } catch let e as RepositoryError where e.code == .usage {
            throw RepositoryError(
                .corrupt, "key envelope \(key) cannot be opened with this installation's master key(s): damaged, or wrapped under another master key", cause: e)
        }
    }
}
