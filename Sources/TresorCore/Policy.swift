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

        public init(
            compressionLevel: Int, chunkMin: Int, chunkAvg: Int, chunkMax: Int, packTarget: Int,
            indexEveryPacks: Int, workers: Int, changedFileRetries: Int
        ) {
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
        /// Daily snapshots retention keeps (the newest of each day), at least 31 so that any day
        /// of the last month can be restored.
        public var dailySnapshotsKept: Int
    }

    /// PostgreSQL base backups, WAL archiving and restores.
    public struct Postgres: Sendable, Equatable {
        /// WAL segments `wal-fetch` fetches ahead of the one PostgreSQL asks for.
        public var walPrefetchDepth: Int
        /// Fixed chunk size of relation files in base backups (a multiple of 8 KiB pages).
        public var relationChunkBytes: Int
        /// zstd level for relation chunks of index pages (`index_compression_level`; when the
        /// key is absent, as in homes made before it existed, the shipped 6).
        public var indexCompressionLevel: Int
        /// zstd level for the other relation chunks: heap, TOAST, free-space and visibility-map
        /// pages (`heap_compression_level`; when the key is absent, as in homes made before it
        /// existed, the shipped 1).
        public var heapCompressionLevel: Int
        /// The most bytes a changed relation page's difference from its base page may take to be
        /// stored as that difference (`page_delta_max_bytes`; 0: every changed page is stored
        /// whole; when the key is absent, as in homes made before it existed, the shipped 1024).
        public var pageDeltaMaxBytes: Int = 1024
        /// How long a base backup waits for its WAL to reach the archive before it fails.
        public var archiveWait: PolicyDuration
        /// `pg stream`: the longest streamed WAL stays only in memory before it is stored as the
        /// segment's partial object (the RPO of a crash of the primary).
        public var streamFlushInterval: PolicyDuration
        /// `pg stream`: how often it reports its positions to the server when nothing else
        /// happens (below the server's `wal_sender_timeout`).
        public var streamStatusInterval: PolicyDuration
        /// How far back point-in-time restore must reach; retention keeps the base backups and
        /// WAL this needs (`recovery_window`).
        public var recoveryWindow: PolicyDuration
        /// How often a base backup is taken (`base_backup_interval`).
        public var baseBackupInterval: PolicyDuration
        /// `wal-fetch` (restore_command): how long it retries a WAL file it cannot read (store
        /// down, object damaged, key unreadable) before it makes PostgreSQL stop recovery with a
        /// FATAL error (`wal_fetch_retry`; when the key is absent, as in homes made before it
        /// existed, 5 minutes).
        public var walFetchRetry: PolicyDuration
    }

    /// Restore drills.
    public struct Drills: Sendable, Equatable {
        /// How often each tenant is drilled (`interval`).
        public var interval: PolicyDuration
        /// The control flags a tenant whose last passing drill is older than this (`max_age`).
        public var maxAge: PolicyDuration
        /// A drill restores this share of the latest document snapshot's files, percent
        /// (`document_sample_percent`) ...
        public var documentSamplePercent: Int
        /// ... and at least this many (`document_sample_min`; all of them when there are fewer).
        public var documentSampleMin: Int
        /// A drill that has not reached a usable database within this gives up (`timeout`); its
        /// unfinished checks are recorded as not run.
        public var timeout: PolicyDuration
        /// Every this many drills of a tenant (counted in its drill runs), `drill run` also runs a
        /// self-test over deliberately damaged copies (`self_test_every`; 0: only on demand).
        public var selfTestEvery: Int
        /// The tenants that opted in to heartbeats (`heartbeat_tenants`: comma-separated names,
        /// `*` for all, empty for none): `tick` writes `tresor.heartbeat` in their database and a
        /// `latest` drill reads it back for the exact data-loss bound.
        public var heartbeatTenants: String
        /// `tick` drills a tenant whose last passing drill is older than `maxAge` minus this at
        /// once, whatever its day in the drill cycle (`renew_before`; 3 days when absent).
        public var renewBefore: PolicyDuration = PolicyDuration(seconds: 3 * 86400)
    }

    /// Deletion after a contract ends, and the sweeper that hunts residual copies.
    public struct Deletion: Sendable, Equatable {
        /// How long after the contract end a tenant's data is deleted (`delay_after_contract_end`,
        /// at most the 90 days the service terms promise).
        public var delayAfterContractEnd: PolicyDuration
        /// How often the sweeper runs (`sweep_interval`).
        public var sweepInterval: PolicyDuration
    }

    /// Customer exports.
    public struct Exports: Sendable, Equatable {
        /// How long a signed download link stays valid (`link_lifetime`).
        public var linkLifetime: PolicyDuration
        /// Downloads one tenant may have running at once on `tresor serve`; more get 429
        /// (`max_concurrent_downloads`).
        public var maxConcurrentDownloads: Int
        /// How long `tresor serve` waits for a download's connection to take the next chunk
        /// (1 MiB) before it closes the connection and frees the tenant's slot
        /// (`download_stall_timeout`): a client that reads nothing cannot hold a slot for ever.
        public var downloadStallTimeout: PolicyDuration
        /// The zstd level of `.tar.zst` exports (`zstd_level`, 1 to 19): 1 compresses about 40%
        /// faster than 3 for an archive about 10% larger (Benchmarks/README.md).
        public var zstdLevel: Int
    }

    /// The download endpoint's access log.
    public struct AccessLog: Sendable, Equatable {
        /// How long access log entries are kept (`retention`).
        public var retention: PolicyDuration
    }

    /// How retention reads calendar days.
    public struct Retention: Sendable, Equatable {
        /// `retention.timezone`: the IANA zone (`UTC`, `Europe/Berlin`) whose local dates decide
        /// which snapshots are "the last of a day" and in which whole-day windows are counted
        /// (a day is 23 or 25 hours long across a daylight-saving change there).
        public var timeZone: String

        public init(timeZone: String = "UTC") { self.timeZone = timeZone }
    }

    /// Job history: the catalog's record of runs.
    public struct JobHistory: Sendable, Equatable {
        /// Runs that finished longer ago than this are deleted from the catalog by
        /// `tresor retention apply` (`job_history.retention`).
        public var retention: PolicyDuration
    }

    /// Store maintenance.
    public struct StoreMaintenance: Sendable, Equatable {
        /// What interrupted writers leave (S3 multipart uploads, local `.tmp` files) is removed
        /// only once it is older than this (`store.incomplete_upload_age`; 24h when absent), so
        /// an upload another host still has in flight is never touched.
        public var incompleteUploadAge: PolicyDuration
        /// `store.repack_garbage_percent`: retention reports a pack as mostly garbage when more
        /// than this share of its bytes belongs to no kept snapshot (50 when absent).
        public var repackGarbagePercent: Int
        public var repackGarbageFraction: Double { Double(repackGarbagePercent) / 100 }

        public init(incompleteUploadAge: PolicyDuration, repackGarbagePercent: Int = 50) {
            self.incompleteUploadAge = incompleteUploadAge
            self.repackGarbagePercent = repackGarbagePercent
        }
    }

    /// Restore drills and the control over them.
    /// The restore figures the service terms promise; the evidence report measures drills
    /// against them.
    public struct ServiceTerms: Sendable, Equatable {
        /// Every restore within this (`rto`, 1 hour).
        public var rto: PolicyDuration
        /// Most restores within this (`rto_typical`, 15 minutes) ...
        public var rtoTypical: PolicyDuration
        /// ... namely more than this share of them, percent (`rto_typical_share_percent`, 75).
        public var rtoTypicalSharePercent: Int
        /// Data loss on a crash under this (`rpo`, 1 minute).
        public var rpo: PolicyDuration
    }

    public var backup: Backup
    public var documents: Documents
    public var postgres: Postgres
    public var store: StoreMaintenance
    public var drills: Drills
    public var deletion: Deletion
    public var exports: Exports
    public var accessLog: AccessLog
    public var retention: Retention
    public var jobHistory: JobHistory
    public var serviceTerms: ServiceTerms
    /// How many jobs one `tresor tick` runs at once (`tick.concurrency`, 2 when absent).
    public var tickConcurrency: Int

    /// Every key a policy file may hold, with what its value must be. A key not listed here is
    /// an error, so a misspelt key never silently leaves a figure at another file's value.
    public static let schema: TOMLSchema = {
        let mib = 1 << 20
        let day = 86400.0
        return TOMLSchema(
            [
                "backup.compression_level": .integer(1...19),
                "backup.chunk_min_bytes": .integer(4096...(64 * mib)),
                "backup.chunk_avg_bytes": .integer(4096...(64 * mib)),
                "backup.chunk_max_bytes": .integer(4096...(64 * mib)),
                "backup.pack_target_bytes": .integer((1 << 16)...(1 << 30)),
                "backup.index_every_packs": .integer(1...100_000),
                "backup.workers": .integer(0...256),
                "backup.changed_file_retries": .integer(0...100),
                "documents.backup_interval": .duration(60...(31 * day)),
                "documents.daily_snapshots_kept": .integer(31...100_000),
                "postgres.wal_prefetch_depth": .integer(0...256),
                "postgres.relation_chunk_bytes": .integer(8192...(64 * mib)),
                "postgres.index_compression_level": .integer(1...19),
                "postgres.heap_compression_level": .integer(1...19),
                "postgres.page_delta_max_bytes": .integer(0...4096),
                "postgres.archive_wait": .duration(0...day),
                "postgres.stream_flush_interval": .duration(0.001...3600),
                "postgres.stream_status_interval": .duration(0.001...3600),
                "postgres.recovery_window": .duration(day...(3660 * day)),
                "postgres.base_backup_interval": .duration(3600...(31 * day)),
                "postgres.wal_fetch_retry": .duration(0...day),
                "drills.interval": .duration(3600...(366 * day)),
                "drills.max_age": .duration(day...(366 * day)),
                "drills.document_sample_percent": .integer(1...100),
                "drills.document_sample_min": .integer(1...1_000_000),
                "drills.timeout": .duration(60...(7 * day)),
                "drills.self_test_every": .integer(0...100_000),
                "drills.heartbeat_tenants": .string,
                "drills.renew_before": .duration(0...(366 * day)),
                "deletion.delay_after_contract_end": .duration(0...(90 * day)),
                "deletion.sweep_interval": .duration(3600...(90 * day)),
                "exports.link_lifetime": .duration(60...(90 * day)),
                "exports.max_concurrent_downloads": .integer(1...1000),
                "exports.download_stall_timeout": .duration(1...(1 * day)),
                "exports.zstd_level": .integer(1...19),
                "access_log.retention": .duration(day...(3660 * day)),
                "retention.timezone": .string,
                "job_history.retention": .duration(day...(3660 * day)),
                "store.incomplete_upload_age": .duration(0...(366 * day)),
                "store.repack_garbage_percent": .integer(1...100),
                "service_terms.rto": .duration(60...(7 * day)),
                "service_terms.rto_typical": .duration(60...(7 * day)),
                "service_terms.rto_typical_share_percent": .integer(0...100),
                "service_terms.rpo": .duration(1...day),
                "tick.concurrency": .integer(1...64),
            ], reference: "policies/default.toml")
    }()

    /// Keys added after homes were first made, with the value the shipped `default.toml` has
    /// (a test holds the two equal). `tresor init` copies the policies once, so a home made
    /// before a key existed lacks it; it gets the shipped figure instead of refusing to start.
    /// Every other key missing from every file is an error naming it.
    public static let figuresOlderHomesLack: [String: TOMLValue] = [
        "postgres.index_compression_level": .integer(6),
        "postgres.heap_compression_level": .integer(1),
        "postgres.page_delta_max_bytes": .integer(1024),
        "documents.daily_snapshots_kept": .integer(31),
        "postgres.recovery_window": .string("30d"),
        "postgres.base_backup_interval": .string("1d"),
        "postgres.wal_fetch_retry": .string("300s"),
        "drills.interval": .string("7d"),
        "drills.max_age": .string("30d"),
        "drills.document_sample_percent": .integer(5),
        "drills.document_sample_min": .integer(20),
        "drills.timeout": .string("2h"),
        "drills.self_test_every": .integer(10),
        "drills.heartbeat_tenants": .string(""),
        "drills.renew_before": .string("3d"),
        "deletion.delay_after_contract_end": .string("90d"),
        "deletion.sweep_interval": .string("7d"),
        "exports.link_lifetime": .string("7d"),
        "exports.max_concurrent_downloads": .integer(4),
        "exports.download_stall_timeout": .string("60s"),
        "exports.zstd_level": .integer(3),
        "access_log.retention": .string("183d"),
        "retention.timezone": .string("UTC"),
        "job_history.retention": .string("183d"),
        "store.incomplete_upload_age": .string("24h"),
        "store.repack_garbage_percent": .integer(50),
        "service_terms.rto": .string("1h"),
        "service_terms.rto_typical": .string("15m"),
        "service_terms.rto_typical_share_percent": .integer(75),
        "service_terms.rpo": .string("1m"),
        "tick.concurrency": .integer(2),
    ]

    /// Builds the policy from a merged TOML document. `origins` names, for each key, the file
    /// that set it, so errors point at the file and line; keys without one are reported
    /// against `source`.
    public init(toml: TOMLValue, source: String, origins: [String: TOMLDocument] = [:]) throws {
        let r = PolicyReader(toml: toml, source: source, origins: origins)
        backup = Backup(
            compressionLevel: try r.int("backup.compression_level"),
            chunkMin: try r.int("backup.chunk_min_bytes"),
            chunkAvg: try r.int("backup.chunk_avg_bytes"),
            chunkMax: try r.int("backup.chunk_max_bytes"),
            packTarget: try r.int("backup.pack_target_bytes"),
            indexEveryPacks: try r.int("backup.index_every_packs"),
            workers: try r.int("backup.workers"),
            changedFileRetries: try r.int("backup.changed_file_retries"))
        guard backup.chunkMin < backup.chunkAvg, backup.chunkAvg < backup.chunkMax else {
            throw r.error(
                "backup.chunk_avg_bytes", "chunk sizes must satisfy min < avg < max",
                hint: "fix chunk_min_bytes, chunk_avg_bytes, chunk_max_bytes")
        }
        documents = Documents(
            backupInterval: try r.duration("documents.backup_interval"),
            dailySnapshotsKept: try r.int("documents.daily_snapshots_kept"))
        postgres = Postgres(
            walPrefetchDepth: try r.int("postgres.wal_prefetch_depth"),
            relationChunkBytes: try r.int("postgres.relation_chunk_bytes"),
            indexCompressionLevel: try r.int("postgres.index_compression_level"),
            heapCompressionLevel: try r.int("postgres.heap_compression_level"),
            pageDeltaMaxBytes: try r.int("postgres.page_delta_max_bytes"),
            archiveWait: try r.duration("postgres.archive_wait"),
            streamFlushInterval: try r.duration("postgres.stream_flush_interval"),
            streamStatusInterval: try r.duration("postgres.stream_status_interval"),
            recoveryWindow: try r.duration("postgres.recovery_window"),
            baseBackupInterval: try r.duration("postgres.base_backup_interval"),
            walFetchRetry: try r.duration("postgres.wal_fetch_retry"))
        serviceTerms = ServiceTerms(
            rto: try r.duration("service_terms.rto"), rtoTypical: try r.duration("service_terms.rto_typical"),
            rtoTypicalSharePercent: try r.int("service_terms.rto_typical_share_percent"),
            rpo: try r.duration("service_terms.rpo"))
        guard postgres.streamFlushInterval.seconds > 0, postgres.streamStatusInterval.seconds > 0 else {
            throw r.error("postgres.stream_flush_interval", "stream_flush_interval and stream_status_interval must be more than 0s")
        }
        store = StoreMaintenance(
            incompleteUploadAge: try r.duration("store.incomplete_upload_age"),
            repackGarbagePercent: try r.int("store.repack_garbage_percent"))
        tickConcurrency = try r.int("tick.concurrency")
        guard postgres.relationChunkBytes % 8192 == 0, postgres.relationChunkBytes <= backup.chunkMax else {
            throw r.error("postgres.relation_chunk_bytes", "must be a multiple of 8192 and at most backup.chunk_max_bytes")
        }
        guard postgres.baseBackupInterval.seconds <= postgres.recoveryWindow.seconds else {
            throw r.error("postgres.base_backup_interval", "must not be longer than postgres.recovery_window")
        }
        drills = Drills(
            interval: try r.duration("drills.interval"), maxAge: try r.duration("drills.max_age"),
            documentSamplePercent: try r.int("drills.document_sample_percent"),
            documentSampleMin: try r.int("drills.document_sample_min"),
            timeout: try r.duration("drills.timeout"), selfTestEvery: try r.int("drills.self_test_every"),
            heartbeatTenants: try r.string("drills.heartbeat_tenants"))
        drills.renewBefore = try r.duration("drills.renew_before")
        guard drills.renewBefore.seconds < drills.maxAge.seconds else {
            throw r.error("drills.renew_before", "must be shorter than drills.max_age")
        }
        guard drills.interval.seconds <= drills.maxAge.seconds else {
            throw r.error("drills.interval", "must not be longer than drills.max_age, or every tenant is overdue")
        }
        deletion = Deletion(
            delayAfterContractEnd: try r.duration("deletion.delay_after_contract_end"),
            sweepInterval: try r.duration("deletion.sweep_interval"))
        exports = Exports(
            linkLifetime: try r.duration("exports.link_lifetime"),
            maxConcurrentDownloads: try r.int("exports.max_concurrent_downloads"),
            downloadStallTimeout: try r.duration("exports.download_stall_timeout"),
            zstdLevel: try r.int("exports.zstd_level"))
        accessLog = AccessLog(retention: try r.duration("access_log.retention"))
        retention = Retention(timeZone: try r.string("retention.timezone"))
        guard TimeZone(identifier: retention.timeZone) != nil else {
            throw r.error(
                "retention.timezone", "\(retention.timeZone) is not a time zone name",
                hint: "use an IANA name such as \"UTC\" or \"Europe/Berlin\"")
        }
        jobHistory = JobHistory(retention: try r.duration("job_history.retention"))
    }

    /// Loads every `*.toml` in `directory` in name order; later files override earlier keys.
    /// Each file is checked against ``schema`` on its own, so an error names its file and line.
    public static func load(directory: URL) throws -> Policy {
        let fm = FileManager.default
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw CoreError.usage(
                "cannot read policy directory \(directory.path)",
                hint: "tresor init writes the default policies there")
        }
        var merged: [String: TOMLValue] = [:]
        var origins: [String: TOMLDocument] = [:]
        for name in names.sorted() where name.hasSuffix(".toml") {
            let url = directory.appendingPathComponent(name)
            let document = try TOML.document(try readText(url, what: "policy file"), source: url.path)
            try schema.validate(document)
            guard case .table(let t) = document.root else { continue }
            merged = deepMerge(merged, t)
            for key in schema.fields.keys where document.root.value(at: key) != nil { origins[key] = document }
        }
        return try Policy(toml: .table(merged), source: directory.path, origins: origins)
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

/// Reads a configuration or policy file as UTF-8 text; a missing, unreadable or non-UTF-8 file
/// is a usage error naming it.
public func readText(_ url: URL, what: String, hint: String? = nil) throws -> String {
    let data: Data
    do {
        data = try Data(contentsOf: url)
    } catch {
        throw CoreError.usage("cannot read \(what) \(url.path)", hint: hint)
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw CoreError.usage("\(url.path): \(what) is not UTF-8 text")
    }
    return text
}

/// Typed reads from a merged policy, checked against ``Policy/schema``, with errors that name
/// the key and the file (and line) that set it.
struct PolicyReader {
    let toml: TOMLValue
    let source: String
    let origins: [String: TOMLDocument]

    func int(_ key: String) throws -> Int {
        guard let v = try value(key), case .integer(let i) = v else {
            preconditionFailure("\(key) is not an integer in Policy.schema")
        }
        return i
    }

    func string(_ key: String) throws -> String {
        guard let v = try value(key), case .string(let s) = v else {
            preconditionFailure("\(key) is not a string in Policy.schema")
        }
        return s
    }

    func duration(_ key: String) throws -> PolicyDuration {
        guard let v = try value(key), case .string(let s) = v, let d = PolicyDuration(s) else {
            preconditionFailure("\(key) is not a duration in Policy.schema")
        }
        return d
    }

    /// The value at `key` after the schema check; ``Policy/figuresOlderHomesLack`` when the
    /// key is in no file and was added after homes were made.
    private func value(_ key: String) throws -> TOMLValue? {
        guard let field = Policy.schema.fields[key] else { preconditionFailure("\(key) is not in Policy.schema") }
        guard let v = toml.value(at: key) else {
            if let later = Policy.figuresOlderHomesLack[key] { return later }
            throw CoreError.usage("\(source): policy key \(key) is missing", hint: "copy it from policies/default.toml")
        }
        if let reason = Policy.schema.problem(v, field) { throw error(key, reason) }
        return v
    }

    /// An error about `key`, placed at the file and line that set it.
    func error(_ key: String, _ reason: String, hint: String? = nil) -> CoreError {
        let place = origins[key]?.location(of: key) ?? source
        return CoreError.usage("\(place): \(key): \(reason)", hint: hint)
    }
}
