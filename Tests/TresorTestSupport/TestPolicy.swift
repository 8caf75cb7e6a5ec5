import Foundation
import TresorCore

/// Policies for tests, read through the same schema as the shipped files.
public enum TestPolicy {
    /// Small sizes so that a few hundred KiB exercise many chunks, packs and index objects; two
    /// workers; the service-terms figures of the shipped default for everything else.
    public static let smallText = """
        [backup]
        compression_level = 3
        chunk_min_bytes = 4096
        chunk_avg_bytes = 16384
        chunk_max_bytes = 65536
        pack_target_bytes = 65536
        index_every_packs = 2
        workers = 2
        changed_file_retries = 1

        [documents]
        backup_interval = "1d"
        daily_snapshots_kept = 31

        [postgres]
        wal_prefetch_depth = 2
        relation_chunk_bytes = 16384
        index_compression_level = 6
        archive_wait = "10s"
        stream_flush_interval = "1s"
        stream_status_interval = "5s"
        recovery_window = "30d"
        base_backup_interval = "1d"

        [drills]
        interval = "7d"
        max_age = "30d"

        [deletion]
        delay_after_contract_end = "90d"
        sweep_interval = "7d"

        [exports]
        link_lifetime = "7d"

        [access_log]
        retention = "183d"

        """

    /// ``smallText`` as a ``Policy``.
    public static var small: Policy {
        do {
            let document = try TOML.document(smallText, source: "TestPolicy.small")
            try Policy.schema.validate(document)
            return try Policy(toml: document.root, source: "TestPolicy.small")
        } catch {
            // The text is a constant of this file; a failure is a bug in it, shown at once.
            fatalError("TestPolicy.small does not load: \(error)")
        }
    }

    /// Writes ``smallText`` as `default.toml` into `directory` (a home's `policies/`).
    public static func writeSmall(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try smallText.write(to: directory.appendingPathComponent("default.toml"), atomically: true, encoding: .utf8)
    }
}
