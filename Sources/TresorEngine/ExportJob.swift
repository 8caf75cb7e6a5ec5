#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TresorCore
import TresorCatalog
import TresorDocuments
import TresorEvidence
import TresorExport

extension Installation {
    /// `tresor export T --out FILE`: a BagIt bag of the tenant's live documents and database
    /// (see ``Exporter``), then an `export` record in the evidence log. An export without its
    /// record does not stand: when the record cannot be written the archive is removed and the
    /// error thrown. `by` is who asked (the OS user unless given).
    public func export(tenant name: String, output: String, by: String, pgBinDirectory: String) throws -> ExportResult {
        let t = try tenant(name)
        guard !t.docRoots.isEmpty || t.pgDSN != nil else {
            throw CoreError.usage("tenant '\(name)' has neither document roots nor a database to export",
                                  hint: "tresor tenant add \(name) --region R --store NAME --docs DIR --pg DSN")
        }
        let roots = DocumentBackup.roots(for: t.docRoots).map { LiveFolderSource.Root(path: $0.path, label: $0.label) }
        return try run(Job(.export, tenant: name) { [self] in
            try exportRecorded(tenant: name, output: output, by: by, pgBinDirectory: pgBinDirectory,
                               documents: roots.isEmpty ? nil : LiveFolderSource(roots: roots), dsn: t.pgDSN)
        })
    }

    private func exportRecorded(tenant name: String, output: String, by: String, pgBinDirectory: String,
                                documents: LiveFolderSource?, dsn: String?) throws -> ExportResult {
        let result = try Exporter.run(ExportRequest(
            tenant: name, output: output, documents: documents,
            databaseDSN: dsn, pgBinDirectory: pgBinDirectory, now: clock.now(), by: by))
        var payload: [String: EvidenceValue] = [
            "by": .string(by),
            "source": .string("live"),
            "format": .string(result.format.rawValue),
            "archive_bytes": .int(result.bytes),
            "archive_sha256": .string(result.sha256),
            "payload_files": .int(result.payloadFiles),
            "payload_bytes": .int(result.payloadBytes),
            "document_files": .int(result.documentFiles),
            "document_bytes": .int(result.documentBytes),
            "problems": .int(Int64(result.problems.count + result.nonUTF8Names.count)),
        ]
        if let db = result.database {
            payload["database_lsn"] = .string(db.lsn)
            payload["database_tables"] = .int(Int64(db.tables.count))
            payload["database_rows"] = .int(db.tables.reduce(0) { $0 + $1.rows })
        }
        do {
            try recordEvidence(kind: .export, tenant: name, payload: payload)
        } catch {
            // The archive was just created by this call (link() refused existing names).
            unlink(result.archive)
            throw error
        }
        return result
    }
}

extension ExportResult: JobResult {}
