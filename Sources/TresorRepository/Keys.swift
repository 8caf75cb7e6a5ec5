import Foundation
import TresorCore
import TresorCrypto

/// The operator's master key: 32 bytes that wrap every tenant's data key. It never leaves the
/// process: not in logs, the catalog or any store.
public struct MasterKey: Sendable {
    let bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw RepositoryError(
                .usage, "the master key must be 32 bytes, got \(bytes.count)",
                hint: "a master key file holds 64 hex digits")
        }
        self.bytes = bytes
    }

    /// Parses 64 hex digits (surrounding whitespace ignored), as written by `tresor init` or
    /// printed by a configured key command.
    public init(text: String) throws {
        guard let bytes = Hex.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
            throw RepositoryError(
                .usage, "the master key is not 64 hex digits",
                hint: "check the master key file or the output of master_key_command")
        }
        self.bytes = bytes
    }

    public static func generate() -> MasterKey { try! MasterKey(bytes: SecureRandom.bytes(32)) }

    /// 64 hex digits, for writing the key file. Callers must never log it.
    public var hexForKeyFile: String { Hex.encode(bytes) }

    /// `tenant` is the name's text: the key-encryption key is derived from it.
    func keyEncryptionKey(tenant: String, salt: [UInt8]) -> [UInt8] {
        HKDF.sha256(ikm: bytes, salt: salt, info: "tresor kek v1 tenant=\(tenant)", count: 32)
    }
}

/// A tenant's data key, wrapped by the master key, as stored at `tenants/<t>/keys/<id>`.
///
/// JSON: `{"format":"tresor-key-envelope","version":1,"tenant":..,"id":..,"created":..,
/// "kdf":"hkdf-sha256","salt":hex,"sealed":hex}` where `sealed` is AES-256-GCM
/// (nonce ‖ ciphertext ‖ tag) of the 32-byte data key under
/// `HKDF-SHA256(ikm: master key, salt, info: "tresor kek v1 tenant=<tenant>")`, with the AAD
/// `tresor key envelope v1 <tenant> <id>`. Deleting every envelope of a tenant makes every copy of
/// its data unreadable (crypto-shredding).
public struct KeyEnvelope: Codable, Sendable {
    public var format = "tresor-key-envelope"
    public var version = 1
    public var tenant: String
    public var id: String
    public var created: String
    public var kdf = "hkdf-sha256"
    public var salt: String
    public var sealed: String

    static func aad(tenant: String, id: String) -> [UInt8] { Array("tresor key envelope v1 \(tenant) \(id)".utf8) }

    /// Wraps `dataKey` for `tenant` under `master`.
    public static func wrap(dataKey: [UInt8], tenant: TenantID, master: MasterKey, created: Date) throws -> KeyEnvelope {
        let id = Hex.encode(SecureRandom.bytes(8))
        let salt = SecureRandom.bytes(16)
        let gcm = try AESGCM(key: master.keyEncryptionKey(tenant: tenant.rawValue, salt: salt))
        let sealed = gcm.seal(dataKey, aad: aad(tenant: tenant.rawValue, id: id))
        return KeyEnvelope(
            tenant: tenant.rawValue, id: id, created: TimeFormat.string(created),
            salt: Hex.encode(salt), sealed: Hex.encode(sealed))
    }

    /// Recovers the data key of the envelope stored at `tenants/<tenant>/keys/<id>`.
    ///
    /// The envelope is bound to where it is stored: `tenant` and `id` are the caller's (from the
    /// key it read), not the JSON's, and both enter the key-encryption key and the associated
    /// data. An envelope copied in from another tenant, or renamed, fails here as ``corrupt``
    /// with a message that says so; a wrong master key fails as ``usage``.
    public func unwrap(master: MasterKey, tenant expectedTenant: TenantID, id expectedID: String) throws -> [UInt8] {
        guard format == "tresor-key-envelope", version == 1,
            let salt = Hex.decode(self.salt), let sealed = Hex.decode(self.sealed)
        else {
            throw RepositoryError(.corrupt, "key envelope \(expectedID) of tenant '\(expectedTenant)' is malformed")
        }
        guard tenant == expectedTenant.rawValue, id == expectedID else {
            throw RepositoryError(
                .corrupt, "key envelope \(expectedID) of tenant '\(expectedTenant)' names tenant '\(tenant)' and id \(id): it was moved or renamed")
        }
        let gcm = try AESGCM(key: master.keyEncryptionKey(tenant: expectedTenant.rawValue, salt: salt))
        guard let key = try? gcm.open(sealed, aad: Self.aad(tenant: expectedTenant.rawValue, id: expectedID)), key.count == 32 else {
            throw RepositoryError(
                .usage, "wrong master key: it does not open key envelope \(expectedID) of tenant '\(expectedTenant)'",
                hint: "use the master key this installation was initialised with (HOME/keys/master.key)")
        }
        return key
    }

    /// ``unwrap(master:tenant:id:)`` with each of `masters` in turn. A damaged or moved envelope
    /// fails at once (no master key helps); when every key fails, the first key's error is thrown.
    public func unwrap(anyOf masters: [MasterKey], tenant: TenantID, id: String) throws -> [UInt8] {
        var first: Error?
        for master in masters {
            do {
                return try unwrap(master: master, tenant: tenant, id: id)
            } catch let e as RepositoryError where e.code == .usage {
                first = first ?? e
            }
        }
        throw first ?? RepositoryError(.usage, "no master key to open key envelope \(id) of tenant '\(tenant)'")
    }

    /// The same data key wrapped again under `master` (key rotation), with a fresh salt and an id
    /// that sorts right after this one's (`<id>-<8 hex>`), so readers that take the first envelope
    /// in key order (version 1 configs) keep choosing the same data key.
    public func rewrapped(dataKey: [UInt8], master: MasterKey, created: Date) throws -> KeyEnvelope {
        let newID = id + "-" + Hex.encode(SecureRandom.bytes(4))
        let salt = SecureRandom.bytes(16)
        let gcm = try AESGCM(key: master.keyEncryptionKey(tenant: tenant, salt: salt))
        let sealed = gcm.seal(dataKey, aad: Self.aad(tenant: tenant, id: newID))
        return KeyEnvelope(
            tenant: tenant, id: newID, created: TimeFormat.string(created),
            salt: Hex.encode(salt), sealed: Hex.encode(sealed))
    }

    /// Decodes an envelope's JSON; damaged JSON is ``RepositoryError/Code/corrupt``.
    public static func decode(_ bytes: [UInt8], key: String) throws -> KeyEnvelope {
        do {
            return try JSONDecoder().decode(KeyEnvelope.self, from: Data(bytes))
        } catch {
            throw RepositoryError(.corrupt, "key envelope \(key) is not valid JSON")
        }
    }

    /// The envelope's JSON as stored.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self))
    }

    /// The public fingerprint of a data key that a version 2 tenant config records:
    /// `HKDF-SHA256(ikm: data key, salt: empty, info: "tresor data key id v1", 16)` as hex. It
    /// names the data key every writer must use, whichever envelope wraps it, and reveals
    /// nothing of the key.
    public static func fingerprint(dataKey: [UInt8]) -> String {
        Hex.encode(HKDF.sha256(ikm: dataKey, salt: [], info: "tresor data key id v1", count: 16))
    }
}

/// The keys derived from one tenant's data key. Nothing here is shared between tenants: one
/// tenant's key opens nothing of another's, and chunk ids and chunk boundaries reveal nothing
/// across tenants.
public struct TenantKeys: Sendable {
    /// AES-256-GCM key for every blob and object.
    public let encryption: [UInt8]
    /// HMAC-SHA-256 key for chunk ids.
    public let chunkID: [UInt8]
    /// HMAC-SHA-256 key for the ids of page-group chunks (blob type `pages`): the MAC, under
    /// this key, of the chunk-id MACs of the chunk's pages (``PageGroupID``).
    public let pageGroupID: [UInt8]
    /// Seed of the tenant's FastCDC gear table.
    public let chunkerSeed: UInt64
    /// The keys of WAL objects only; the one secret the PostgreSQL OS user is given.
    public let wal: WALKeys

    public init(dataKey: [UInt8]) {
        encryption = HKDF.sha256(ikm: dataKey, salt: [], info: "tresor blob encryption v1", count: 32)
        chunkID = HKDF.sha256(ikm: dataKey, salt: [], info: "tresor chunk id v1", count: 32)
        pageGroupID = HKDF.sha256(ikm: dataKey, salt: [], info: "tresor page group id v1", count: 32)
        let seed = HKDF.sha256(ikm: dataKey, salt: [], info: "tresor chunker seed v1", count: 8)
        chunkerSeed = seed.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        wal = WALKeys(
            encryption: HKDF.sha256(ikm: dataKey, salt: [], info: "tresor wal encryption v1", count: 32),
            hash: HKDF.sha256(ikm: dataKey, salt: [], info: "tresor wal hash v1", count: 32))
    }
}

/// The two keys that seal and identify a tenant's WAL objects, derived from its data key.
///
/// They open WAL objects and nothing else: not packs, index objects or snapshots (which use the
/// blob encryption key). This is what lets `archive_command` and `restore_command`, which run as
/// the PostgreSQL OS user, hold a key file without being able to read document backups or base
/// backups. Serialised for that file as `tresor-wal-keys v1 <64 hex> <64 hex>`.
public struct WALKeys: Sendable, Equatable {
    /// AES-256-GCM key of WAL objects.
    public let encryption: [UInt8]
    /// HMAC-SHA-256 key of the plaintext hash kept in each WAL object's header.
    public let hash: [UInt8]

    init(encryption: [UInt8], hash: [UInt8]) {
        self.encryption = encryption
        self.hash = hash
    }

    /// The key file's text. Callers must never log it.
    public var fileText: String { "tresor-wal-keys v1 \(Hex.encode(encryption)) \(Hex.encode(hash))\n" }

    /// Parses ``fileText``.
    public init(fileText: String) throws {
        let parts = fileText.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 4, parts[0] == "tresor-wal-keys", parts[1] == "v1",
            let e = Hex.decode(String(parts[2])), e.count == 32, let h = Hex.decode(String(parts[3])), h.count == 32
        else {
            throw RepositoryError(.usage, "the wal key file is malformed", hint: "run tresor pg setup again as the operator")
        }
        encryption = e
        hash = h
    }
}
