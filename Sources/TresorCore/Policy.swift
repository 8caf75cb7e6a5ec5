import Foundation

/// The figures Tresor works to, read from `policies/*.toml`. Code never hard-codes them: a value
/// missing from every policy file is a configuration error naming the key.
public struct Policy: Sendable, Equatable {
    /// How data is chunked, compressed and packed.
    public struct Backup: Sendable, Equatable {
        public var compressionLevel: Int
        public var chunkMin: Int
        public var chunkAvg: Int
        public var chunkMax: Int
        public var packTarget: Int
        public var indexEveryPacks: Int
        /// Compression and sealing workers; resolved to the core count when the policy says 0.
        public var workers: Int
        public var changedFileRetries: Int

        public init(compressionLevel: Int, chunkMin: Int, chunkAvg: Int, chunkMax: Int, packTarget: Int,
                    indexEveryPacks: Int, workers: Int, changedFileRetries: Int) {
            self.compressionLevel = compressionLevel
            self.chunkMin = chunkMin
            self.chunkAvg = chunkAvg
            self.chunkMax = chunkMax
            self.packTarget = packTarget
            self.indexEveryPacks = indexEveryPacks
            self.workers = workers
            self.changedFileRetries = changedFileRetries
        }
    }

    /// Document backups.
    public struct Documents: Sendable, Equatable {
        public var backupInterval: PolicyDuration
    }

    /// PostgreSQL base backups, WAL archiving and restores.
    public struct Postgres: Sendable, Equatable {
        /// WAL segments `wal-fetch` fetches ahead of the one PostgreSQL asks for.
        public var walPrefetchDepth: Int
        /// Fixed chunk size of relation files in base backups (a multiple of 8 KiB pages).
        public var relationChunkBytes: Int
        /// zstd level for relation chunks of index pages (`index_compression_level`; when the
        /// key is absent, as in homes made before it existed, 6).
        public var indexCompressionLevel: Int
        /// How long a base backup waits for its WAL to reach the archive before it fails.
        public var archiveWait: PolicyDuration
        /// `pg stream`: the longest streamed WAL stays only in memory before it is stored as the
        /// segment's partial object (the RPO of a crash of the primary).
        public var streamFlushInterval: PolicyDuration
        /// `pg stream`: how often it reports its positions to the server when nothing else
        /// happens (below the server's `wal_sender_timeout`).
        public var streamStatusInterval: PolicyDuration
    }

    /// Store maintenance.
    public struct StoreMaintenance: Sendable, Equatable {
        /// What interrupted writers leave (S3 multipart uploads, local `.tmp` files) is removed
        /// only once it is older than this (`store.incomplete_upload_age`; 24h when absent), so
        /// an upload another host still has in flight is never touched.
        public var incompleteUploadAge: PolicyDuration

        public init(incompleteUploadAge: PolicyDuration) { self.incompleteUploadAge = incompleteUploadAge }
    }

    public var backup: Backup
    public var documents: Documents
    public var postgres: Postgres
    public var store: StoreMaintenance

    /// Builds the policy from a merged TOML document.
    public init(toml: TOMLValue, source: String) throws {
        let r = PolicyReader(toml: toml, source: source)
        backup = Backup(
            compressionLevel: try r.int("backup.compression_level", in: 1...19),
            chunkMin: try r.int("backup.chunk_min_bytes", in: 4096...(64 << 20)),
            chunkAvg: try r.int("backup.chunk_avg_bytes", in: 4096...(64 << 20)),
            chunkMax: try r.int("backup.chunk_max_bytes", in: 4096...(64 << 20)),
            packTarget: try r.int("backup.pack_target_bytes", in: (1 << 16)...(1 << 30)),
            indexEveryPacks: try r.int("backup.index_every_packs", in: 1...100_000),
            workers: try r.int("backup.workers", in: 0...256),
            changedFileRetries: try r.int("backup.changed_file_retries", in: 0...100))
        guard backup.chunkMin < backup.chunkAvg, backup.chunkAvg < backup.chunkMax else {
            throw CoreError.usage("\(source): backup chunk sizes must satisfy min < avg < max",
                                  hint: "fix chunk_min_bytes, chunk_avg_bytes, chunk_max_bytes")
        }
        documents = Documents(backupInterval: try r.duration("documents.backup_interval"))
        postgres = Postgres(
            walPrefetchDepth: try r.int("postgres.wal_prefetch_depth", in: 0...256),
            relationChunkBytes: try r.int("postgres.relation_chunk_bytes", in: 8192...(64 << 20)),
            indexCompressionLevel: try r.int("postgres.index_compression_level", in: 1...19, default: 6),
            archiveWait: try r.duration("postgres.archive_wait"),
            streamFlushInterval: try r.duration("postgres.stream_flush_interval"),
            streamStatusInterval: try r.duration("postgres.stream_status_interval"))
        guard postgres.streamFlushInterval.seconds > 0, postgres.streamStatusInterval.seconds > 0 else {
            throw CoreError.usage("\(source): postgres.stream_flush_interval and stream_status_interval must be more than 0s")
        }
        store = StoreMaintenance(
            incompleteUploadAge: try r.duration("store.incomplete_upload_age", default: PolicyDuration(seconds: 86400)))
        guard postgres.relationChunkBytes % 8192 == 0, postgres.relationChunkBytes <= backup.chunkMax else {
            throw CoreError.usage("\(source): postgres.relation_chunk_bytes must be a multiple of 8192 and at most backup.chunk_max_bytes")
        }
    }

    /// Loads every `*.toml` in `directory` in name order; later files override earlier keys.
    public static func load(directory: URL) throws -> Policy {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else {
            throw CoreError.usage("cannot read policy directory \(directory.path)",
                                  hint: "tresor init writes the default policies there")
        }
        var merged: [String: TOMLValue] = [:]
        for name in names.sorted() where name.hasSuffix(".toml") {
            let url = directory.appendingPathComponent(name)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw CoreError.usage("cannot read policy file \(url.path)")
            }
            if case .table(let t) = try TOML.parse(text, source: url.path) { merged = deepMerge(merged, t) }
        }
        return try Policy(toml: .table(merged), source: directory.path)
    }

    /// The policies shipped with Tresor: `policies/` of the source tree, which the build copies
    /// next to the executable (`Tresor_TresorCore.resources/policies`); an installed copy may
    /// keep them in `../share/tresor/policies`. Looked up by path rather than `Bundle.module`,
    /// which aborts the process when the bundle is missing.
    public static var bundledDirectory: URL? {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let dir = exe.deletingLastPathComponent()
        let candidates = [
            dir.appendingPathComponent("Tresor_TresorCore.resources/policies"),
            dir.appendingPathComponent("../share/tresor/policies").standardizedFileURL,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("default.toml").path) }
    }

    static func deepMerge(_ a: [String: TOMLValue], _ b: [String: TOMLValue]) -> [String: TOMLValue] {
        var out = a
        for (k, v) in b {
            if case .table(let bt) = v, case .table(let at)? = out[k] {
                out[k] = .table(deepMerge(at, bt))
            } else {
                out[k] = v
            }
        }
        return out
    }
}

/// Typed, checked reads from a TOML document with errors that name the key and the file.
struct PolicyReader {
    let toml: TOMLValue
    let source: String

    func int(_ key: String, in range: ClosedRange<Int>, default fallback: Int? = nil) throws -> Int {
        guard let v = toml.value(at: key) else {
            if let fallback { return fallback }
            throw missing(key)
        }
        guard case .integer(let i) = v, range.contains(i) else {
            throw CoreError.usage("\(source): \(key) must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return i
    }

    func duration(_ key: String, default fallback: PolicyDuration? = nil) throws -> PolicyDuration {
        guard let v = toml.value(at: key) else {
            if let fallback { return fallback }
            throw missing(key)
        }
        guard case .string(let s) = v, let d = PolicyDuration(s) else {
            throw CoreError.usage("\(source): \(key) must be a duration such as \"1d\" or \"12h\"")
        }
        return d
    }

    private func missing(_ key: String) -> CoreError {
        CoreError.usage("\(source): policy key \(key) is missing", hint: "copy it from policies/default.toml")
    }
}
