import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto
import TresorEvidence
import TresorStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Home {
    /// `HOME/evidence/log.jsonl`: the evidence log, apart from tenant data (docs/evidence.md).
    public var evidenceLog: URL { root.appendingPathComponent("evidence/log.jsonl") }
}

/// What `tresor evidence export-key` prints.
public struct EvidenceKeyExport: Sendable, Codable {
    /// The file the key came from.
    public var file: String
    public var hex: String
    public var pem: String
    /// SHA-256 of the 32 key bytes, hex.
    public var fingerprint: String
}

/// What `tresor evidence rotate-key` did.
public struct EvidenceKeyRotation: Sendable, Codable {
    public var oldKeyFingerprint: String
    public var newKeyFingerprint: String
    public var newKey: String
    public var seq: Int64
}

extension Installation {
    /// The evidence private key file (`keys.evidence_key_file`, default `keys/evidence.key`).
    var evidenceKeyURL: URL { home.path(config.evidenceKeyFile) }

    /// The public key `init` wrote next to the first evidence key: the trust anchor auditors
    /// verify with. Rotations never change it; they are followed from it.
    static func evidenceAnchorURL(keyFile: URL) -> URL {
        keyFile.deletingPathExtension().appendingPathExtension("pub")
    }

    /// Where a rotation keeps the new key until the log names it.
    private var pendingEvidenceKeyURL: URL { evidenceKeyURL.appendingPathExtension("next") }

    /// The log with the current signing key. Finishes a rotation that a crash interrupted: when the
    /// log already names the pending key, that key becomes the key file.
    public func evidenceLog() throws -> EvidenceLog {
        var key = try EvidenceKeys.loadPrivateKey(evidenceKeyURL)
        let pending = pendingEvidenceKeyURL
        let expected = try EvidenceLog.expectedSigner(log: home.evidenceLog)
        if FileManager.default.fileExists(atPath: pending.path) {
            let next = try EvidenceKeys.loadPrivateKey(pending)
            if expected == Hex.encode(next.publicKey.rawRepresentation) {
                try renameDurably(pending, over: evidenceKeyURL)
                key = next
            } else if expected == nil || expected == Hex.encode(key.publicKey.rawRepresentation) {
                // The crash came before the rotation record: the pending key never signed anything
                // and no record names it, so removing it loses nothing.
                try? FileManager.default.removeItem(at: pending)
            }
        }
        if expected == nil {
            // The first record's signer must be the anchor auditors verify with, or the whole log
            // would fail verification from line 1.
            let anchorURL = Self.evidenceAnchorURL(keyFile: evidenceKeyURL)
            let anchor = try EvidenceKeys.loadPublicKey(anchorURL)
            guard anchor == key.publicKey else {
                throw EvidenceError(
                    .badKey, "the evidence key \(evidenceKeyURL.path) does not match the anchor public key \(anchorURL.path)",
                    hint: "restore the key that belongs to \(anchorURL.lastPathComponent), or move both aside and run tresor init")
            }
        }
        return EvidenceLog(url: home.evidenceLog, signer: key, clock: clock)
    }

    /// Appends one evidence record (no customer content: ids, hashes, counts, times, versions,
    /// results) and returns it once it is on disk.
    @discardableResult
    public func recordEvidence(kind: EvidenceKind, tenant: TenantID?, payload: [String: EvidenceValue]) throws -> EvidenceLog.Appended {
        try evidenceLog().append(kind: kind, tenant: tenant?.rawValue, payload: payload)
    }

    /// `tresor region approve`: records the evidence first, then the approval that takes effect,
    /// so an approval in force always has its signed record. The free-text reason may hold
    /// anything, and the log can never be redacted: the record keeps its SHA-256, the catalog
    /// the text.
    public func approveRegion(tenant id: TenantID, store storeName: String, by: String, reason: String) throws -> RegionApproval {
        let name = id.rawValue
        let tenant = try tenant(id)
        let store = try storeRecord(storeName)
        let approval = RegionApproval(tenant: name, store: storeName, approvedBy: by, reason: reason, approvedAt: clock.now())
        try recordEvidence(
            kind: .regionApproval, tenant: id,
            payload: [
                "store": .string(storeName), "store_region": .string(store.region), "tenant_region": .string(tenant.region),
                "approved_by": .string(by), "reason_sha256": .string(SHA256.hash(Array(reason.utf8)).hex),
            ])
        try catalog.addRegionApproval(approval)
        return approval
    }

    /// `tresor evidence list`.
    public func listEvidence(tenant: TenantID?, kind: EvidenceKind?, since: Date?) throws -> EvidenceListing {
        try EvidenceListing.read(log: home.evidenceLog, tenant: tenant?.rawValue, kind: kind?.rawValue, since: since)
    }

    /// `tresor evidence rotate-key`: a new key signs from now on. The old key signs a record naming
    /// the new one; the new private key is on disk (fsynced) before that record is written, and
    /// replaces the old key file after it, so a crash at any point leaves a usable log.
    public func rotateEvidenceKey() throws -> EvidenceKeyRotation {
        let log = try evidenceLog()
        let next = Ed25519PrivateKey()
        try writeKeyFile(pendingEvidenceKeyURL, Hex.encode(next.rawRepresentation) + "\n")
        let appended = try log.rotate(to: next.publicKey)
        try renameDurably(pendingEvidenceKeyURL, over: evidenceKeyURL)
        return EvidenceKeyRotation(
            oldKeyFingerprint: EvidenceKeys.fingerprint(log.signer.publicKey),
            newKeyFingerprint: EvidenceKeys.fingerprint(next.publicKey),
            newKey: EvidenceKeys.hex(next.publicKey), seq: appended.record.seq)
    }

    /// Copies the evidence log's records that `storeName` lacks (see ``EvidenceReplicator``).
    public func replicateEvidence(to storeName: String) throws -> EvidenceReplicator.Report {
        let record = try storeRecord(storeName)
        return try EvidenceReplicator.replicate(log: home.evidenceLog, to: try openStore(url: record.url, create: true))
    }

    /// `tresor evidence verify`: checks `log` (default: the home's) with only `publicKey`
    /// (default: the home's anchor `evidence.pub`, never a key from the log). With both given,
    /// no installation is needed: an auditor runs it on a copy.
    public static func verifyEvidence(home: Home, configFile: URL?, log: URL?, publicKey: URL?) throws -> EvidenceVerification {
        let logURL = log ?? home.evidenceLog
        if log != nil, !FileManager.default.fileExists(atPath: logURL.path) {
            throw CoreError.usage("no evidence log at \(logURL.path)", hint: "pass --log FILE with a copy of HOME/evidence/log.jsonl")
        }
        // Without both flags, the home must exist: a mistyped --home is an error, not an empty log.
        let config = log == nil || publicKey == nil ? try loadConfig(home: home, configFile: configFile) : nil
        let keyURL = publicKey ?? evidenceAnchorURL(keyFile: home.path(config?.evidenceKeyFile ?? "keys/evidence.key"))
        let key = try EvidenceKeys.loadPublicKey(keyURL)
        return try EvidenceVerifier.verify(log: logURL, trustedKey: key)
    }

    /// `tresor evidence export-key`: the anchor public key (what auditors verify with), or with
    /// `current` the key that signs new records now.
    public static func exportEvidenceKey(home: Home, configFile: URL?, current: Bool) throws -> EvidenceKeyExport {
        let keyFile = home.path(try loadConfig(home: home, configFile: configFile).evidenceKeyFile)
        let file = current ? keyFile : evidenceAnchorURL(keyFile: keyFile)
        let key = current ? try EvidenceKeys.loadPrivateKey(keyFile).publicKey : try EvidenceKeys.loadPublicKey(file)
        return EvidenceKeyExport(
            file: file.path, hex: EvidenceKeys.hex(key), pem: EvidenceKeys.pem(key),
            fingerprint: EvidenceKeys.fingerprint(key))
    }

    private static func loadConfig(home: Home, configFile: URL?) throws -> Config {
        let url = configFile ?? home.configFile
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CoreError.usage(
                "no Tresor installation at \(home.root.path) (missing \(url.lastPathComponent))",
                hint: "pass --log FILE and --public-key FILE, or --home DIR")
        }
        return try Config.load(from: url)
    }

    private func writeKeyFile(_ url: URL, _ text: String) throws {
        let fd = Glibc.open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError.failed("cannot create \(url.path): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let ok = write(fd, bytes, bytes.count) == bytes.count && fsync(fd) == 0
        close(fd)
        guard ok else { throw CoreError.failed("cannot write \(url.path)") }
    }

    private func renameDurably(_ from: URL, over to: URL) throws {
        guard rename(from.path, to.path) == 0 else {
            throw CoreError.failed("cannot rename \(from.path) to \(to.path): \(String(cString: strerror(errno)))")
        }
        let d = Glibc.open(to.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { throw CoreError.failed("cannot open \(to.deletingLastPathComponent().path)") }
        defer { close(d) }
        guard fsync(d) == 0 else { throw CoreError.failed("cannot fsync \(to.deletingLastPathComponent().path)") }
    }
}
