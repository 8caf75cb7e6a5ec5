import Foundation
import TresorCatalog
import TresorCore
import TresorEvidence
import TresorPostgres
import TresorStore

/// One piece of residual data the sweeper found.
public struct SweepFinding: Codable, Sendable, Equatable {
    /// What was found. Printed, encoded and counted in the sweep's evidence (`by_kind`) as the
    /// raw value.
    public enum Kind: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
        /// A file or folder in a swept root named after the tenant.
        case folderName = "folder-name"
        /// A file in a swept root whose content matches one of the tenant's fingerprints.
        case folderContent = "folder-content"
        case pgDatabase = "pg-database"
        case pgSchema = "pg-schema"
        case pgRole = "pg-role"
        case pgSlot = "pg-slot"
        /// An object under the tenant's prefix, or with its name in a key segment.
        case storeObject = "store-object"
        /// An unfinished multipart upload naming the tenant.
        case storeUpload = "store-upload"
        /// A place under the home (scratch, spool, cache, exports, pg, secrets, locks) named after it.
        case tresorPlace = "tresor-place"

        public var description: String { rawValue }
    }

    /// The tenant as the sweeper matched it: text, not a ``TenantID``, since it names what was
    /// found on disk or in a server, which need not be a valid tenant name.
    public var tenant: String
    public var kind: Kind
    /// A path, `store:key`, or `server:object` (server named by its host, never its DSN).
    public var place: String
    public var purged: Bool
}

public struct SweepResult: Codable, Sendable {
    public var asOf: Date
    /// Deleted tenants and tenants past their deadline that were hunted.
    public var targets: [String]
    public var findings: [SweepFinding]
    public var problems: [String]
    public var evidenceSeq: Int64?
    public var outcome: Outcome { findings.isEmpty && problems.isEmpty ? .ok : .problemFound }
}

/// Whole-word matching of tenant names: `acme` matches `acme`, `acme.sql`, `old-acme/`, but not
/// `acme2` or `bacme`. An occurrence that is part of a live tenant's name (`acme` inside
/// `acme-eu` when `acme-eu` is live) is not a match.
public struct TenantNameMatcher: Sendable {
    let targets: [String]
    let live: [String]

    public init(targets: [String], live: [String]) {
        self.targets = targets
        self.live = live
    }

    static func isWordChar(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
    }

    /// Ranges where `word` occurs in `text` with no letter or digit on either side.
    static func occurrences(_ word: [UInt8], in text: [UInt8]) -> [Range<Int>] {
        guard !word.isEmpty, text.count >= word.count else { return [] }
        var out: [Range<Int>] = []
        for i in 0...(text.count - word.count) where text[i] == word[0] && Array(text[i..<(i + word.count)]) == word {
            let before = i == 0 || !isWordChar(text[i - 1])
            let after = i + word.count == text.count || !isWordChar(text[i + word.count])
            if before && after { out.append(i..<(i + word.count)) }
        }
        return out
    }

    /// The target tenant `name` is about, if any.
    public func match(_ name: String) -> String? {
        let text = Array(name.lowercased().utf8)
        let liveRanges = live.flatMap { Self.occurrences(Array($0.lowercased().utf8), in: text) }
        for t in targets {
            for r in Self.occurrences(Array(t.lowercased().utf8), in: text)
            where !liveRanges.contains(where: { $0.lowerBound <= r.lowerBound && $0.upperBound >= r.upperBound && $0.count > r.count }) {
                return t
            }
        }
        return nil
    }
}

extension Installation {
    /// `tresor sweep`: hunts residual data of deleted tenants and of tenants past their deadline
    /// in `roots`, PostgreSQL servers `dsns`, `storeNames` (default: every store in the catalog)
    /// and the home's own places. `purge` removes what it found and appends a `sweep` record.
    public func sweep(roots: [String], dsns: [String], storeNames: [String], purge: Bool) throws -> SweepResult {
        try recordedRun(.sweep) {
            try sweepPass(roots: roots, dsns: dsns, storeNames: storeNames, purge: purge)
        } outcome: {
            $0.outcome
        }
    }

    private func sweepPass(roots: [String], dsns: [String], storeNames: [String], purge: Bool) throws -> SweepResult {
        let now = clock.now()
        let delay = policy.deletion.delayAfterContractEnd
        let tenants = try catalog.tenants()
        var targets = Set(try catalog.deletions().map(\.tenant))
        for t in tenants where DeletionRule.state(contractEnd: t.contractEnd, hold: t.holdReason, delay: delay, now: now) == .due {
            targets.insert(t.name)
        }
        let live = tenants.map(\.name).filter { !targets.contains($0) }
        let matcher = TenantNameMatcher(targets: targets.sorted(), live: live)
        var result = SweepResult(asOf: now, targets: targets.sorted(), findings: [], problems: [])
        let (fingerprints, _) = try TenantFingerprints.all(home, now: now)
        var salts: [(set: TenantFingerprints, salt: [UInt8])] = []
        for f in fingerprints where targets.contains(f.tenant) {
            guard let salt = Hex.decode(f.salt) else {
                result.problems.append("the fingerprint set of '\(f.tenant)' has an unreadable salt: its documents cannot be recognised")
                continue
            }
            salts.append((f, salt))
        }

        func found(_ tenant: String, _ kind: SweepFinding.Kind, _ place: String, purgeWith remove: () throws -> Void) {
            var f = SweepFinding(tenant: tenant, kind: kind, place: place, purged: false)
            if purge {
                do { try remove(); f.purged = true } catch { result.problems.append("cannot purge \(place): \(error)") }
            }
            result.findings.append(f)
        }

        // Folders, and the home's scratch, spool, cache and export directories.
        let homePlaces = ["scratch", "spool", "cache", "exports", "pg", "secrets", "locks"].map { home.root.appendingPathComponent($0).path }
        for root in roots + homePlaces.filter({ FileManager.default.fileExists(atPath: $0) }) {
            guard FileManager.default.fileExists(atPath: root) else {
                result.problems.append("root \(root) does not exist")
                continue
            }
            let isHome = homePlaces.contains(root)
            guard let e = FileManager.default.enumerator(atPath: root) else {
                result.problems.append("cannot read \(root)")
                continue
            }
            while let rel = e.nextObject() as? String {
                let path = root + "/" + rel
                let name = (rel as NSString).lastPathComponent
                if let t = matcher.match(name) {
                    e.skipDescendants()
                    found(t, isHome ? .tresorPlace : .folderName, path) { try FileManager.default.removeItem(atPath: path) }
                    continue
                }
                guard !isHome, !salts.isEmpty, e.fileAttributes?[.type] as? FileAttributeType == .typeRegular,
                    let size = (e.fileAttributes?[.size] as? NSNumber)?.intValue
                else { continue }
                for (set, salt) in salts {
                    guard let hashes = set.bySize[String(size)] else { continue }
                    guard let h = TenantFingerprints.hashFile(path, salt: salt) else {
                        result.problems.append("cannot read \(path)")
                        break
                    }
                    if hashes.contains(h) {
                        found(set.tenant, .folderContent, path) { try FileManager.default.removeItem(atPath: path) }
                        break
                    }
                }
            }
        }

        // Stores: objects under a target's prefix or carrying its name, and unfinished uploads.
        let stores = storeNames.isEmpty ? try catalog.stores() : try storeNames.map { try storeRecord($0) }
        for s in stores {
            do {
                let store = try openStore(url: s.url, create: false)
                for o in try store.list(prefix: "") {
                    let segments = o.key.split(separator: "/").map(String.init)
                    let target =
                        segments.count > 1 && segments[0] == "tenants" && targets.contains(segments[1])
                        ? segments[1]
                        : segments.lazy.compactMap { matcher.match($0) }.first
                    if let t = target {
                        found(t, .storeObject, "\(s.name):\(o.key)") { try store.delete(o.key) }
                    }
                }
                // Unfinished uploads exist only on S3; the opened store is wrapped (retry,
                // limit), so the listing goes to a plain S3Store of the same location.
                if case .s3(let location) = try StoreURL.parse(s.url) {
                    let s3 = try S3Store(location, credentials: try s3Credentials(), traffic: traffic)
                    for key in try s3.incompleteUploads(prefix: "") {
                        if let t = key.split(separator: "/").lazy.compactMap({ matcher.match(String($0)) }).first {
                            found(t, .storeUpload, "\(s.name):\(key)") { _ = try s3.abortIncompleteUploads(prefix: key, olderThan: 0) }
                        }
                    }
                }
            } catch {
                result.problems.append("store \(s.name) not swept: \(error)")
            }
        }

        // PostgreSQL servers.
        for dsn in dsns {
            let server = ConnInfoHost.describe(dsn)
            do {
                let c = try PGConnection(dsn: dsn)
                let queries = [
                    (SweepFinding.Kind.pgDatabase, "SELECT datname FROM pg_database", "DROP DATABASE"),
                    (.pgSchema, "SELECT nspname FROM pg_namespace", "DROP SCHEMA"),
                    (.pgRole, "SELECT rolname FROM pg_roles", "DROP ROLE"),
                    (.pgSlot, "SELECT slot_name FROM pg_replication_slots", ""),
                ]
                for (kind, sql, drop) in queries {
                    for row in try c.query(sql) {
                        guard let name = row.first ?? nil, let t = matcher.match(name) else { continue }
                        let quoted = "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                        found(t, kind, "\(server):\(name)") {
                            if drop.isEmpty {
                                _ = try c.query("SELECT pg_drop_replication_slot('\(name.replacingOccurrences(of: "'", with: "''"))')")
                            } else {
                                _ = try c.query("\(drop) \(quoted)\(kind == .pgSchema ? " CASCADE" : "")")
                            }
                        }
                    }
                }
            } catch {
                result.problems.append("server \(server) not swept: \(error)")
            }
        }

        if purge {
            result.evidenceSeq = try recordEvidence(
                kind: .sweep, tenant: nil,
                payload: [
                    "targets": .array(result.targets.map { .string($0) }),
                    "found": .int(Int64(result.findings.count)),
                    "purged": .int(Int64(result.findings.filter(\.purged).count)),
                    "by_kind": .object(Dictionary(grouping: result.findings, by: \.kind.rawValue).mapValues { .int(Int64($0.count)) }),
                    "problems": .int(Int64(result.problems.count)),
                ]
            ).record.seq
        }
        return result
    }
}

/// Names a server by host and port only: a DSN may hold a password.
enum ConnInfoHost {
    static func describe(_ dsn: String) -> String {
        var host = "localhost", port = "5432"
        for part in dsn.split(separator: " ") {
            if part.hasPrefix("host=") { host = String(part.dropFirst(5)) }
            if part.hasPrefix("port=") { port = String(part.dropFirst(5)) }
        }
        return "\(host):\(port)"
    }
}
