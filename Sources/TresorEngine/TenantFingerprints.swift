import Foundation
import TresorCatalog
import TresorCore
import TresorCrypto

/// A deleted tenant's salted document fingerprints: for each file of its document roots at
/// deletion time, its size and SHA-256(salt ‖ content). Never the content, never a name. The
/// sweeper hashes files of the same size with the same salt to recognise renamed copies.
/// Kept in `HOME/fingerprints/T.json` for ``retention`` after the deletion (docs/deletion.md).
public struct TenantFingerprints: Codable, Sendable {
    public var tenant: String
    public var takenAt: Date
    /// Hex, 32 random bytes, one per tenant: the set is useless against any other data set.
    public var salt: String
    /// Size in bytes → salted hashes of the files of that size.
    public var bySize: [String: [String]]

    /// How long a set is kept after the deletion: one year, then the sweeper removes it.
    public static let retention: TimeInterval = 365 * 86400

    static func url(_ home: Home, _ tenant: TenantID) -> URL {
        home.root.appendingPathComponent("fingerprints/\(tenant.rawValue).json")
    }

    /// Walks the tenant's document roots and writes its set (replacing one a crashed run wrote).
    static func record(tenant: TenantRecord, home: Home, now: Date) throws {
        let salt = SecureRandom.bytes(32)
        var set = TenantFingerprints(tenant: tenant.name, takenAt: now, salt: Hex.encode(salt), bySize: [:])
        for root in tenant.docRoots {
            guard let e = FileManager.default.enumerator(atPath: root) else { continue }
            while let rel = e.nextObject() as? String {
                let path = root + "/" + rel
                guard let attrs = try? FileManager.default.attributesOfItem(atPath: path),  // vanished: nothing to fingerprint
                    attrs[.type] as? FileAttributeType == .typeRegular,
                    let size = (attrs[.size] as? NSNumber)?.intValue, size > 0
                else { continue }
                guard let hash = hashFile(path, salt: salt) else {
                    throw CoreError.failed("cannot read \(path) to fingerprint it before the deletion of '\(tenant.name)'")
                }
                set.bySize[String(size), default: []].append(hash)
            }
        }
        let url = Self.url(home, try tenant.id)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try JSONEncoder().encode(set).write(to: url, options: .atomic)
    }

    /// Every set in the home (sets older than ``retention`` are removed first, and returned in
    /// `expired`).
    static func all(_ home: Home, now: Date) throws -> (sets: [TenantFingerprints], expired: [String]) {
        let dir = home.root.appendingPathComponent("fingerprints")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return ([], []) }  // none recorded yet
        var sets: [TenantFingerprints] = [], expired: [String] = []
        for n in names.sorted() where n.hasSuffix(".json") {
            let url = dir.appendingPathComponent(n)
            let set = try JSONDecoder().decode(TenantFingerprints.self, from: Data(contentsOf: url))
            if now.timeIntervalSince(set.takenAt) > retention {
                try FileManager.default.removeItem(at: url)
                expired.append(set.tenant)
            } else {
                sets.append(set)
            }
        }
        return (sets, expired)
    }

    /// SHA-256(salt ‖ content) of a file, read in 1 MiB pieces; `nil` when it cannot be read.
    static func hashFile(_ path: String, salt: [UInt8]) -> String? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }  // read-only handle: closing cannot lose data
        let hasher = SHA256Hasher()
        hasher.update(salt)
        do {
            // `read(upToCount:)` answers nil (or empty) at the end of the file.
            while let d = try h.read(upToCount: 1 << 20), !d.isEmpty {
                d.withUnsafeBytes { hasher.update($0) }
            }
        } catch {
            return nil
        }
        return hasher.finalize().hex
    }
}
