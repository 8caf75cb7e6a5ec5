import Foundation
import Testing
import TresorCore
import TresorTestSupport

@testable import TresorExport

#if canImport(Glibc)
import Glibc
#endif

/// A source cluster with awkward data, and a document tree with awkward names.
final class ExportFixture: @unchecked Sendable {
    let dir = TempDirectory("tresor-export")
    let cluster: ScratchCluster
    var docs: URL { dir.sub("docs") }

    /// Tables (schema, name) and the SQL that made them.
    static let setupSQL = #"""
        CREATE TABLE public.awkward (id int PRIMARY KEY, t text, b bytea, n numeric, ts timestamptz);
        INSERT INTO public.awkward VALUES
          (1, 'comma, and "quotes"', '\x00ff10'::bytea, 1.5, '2026-01-02 03:04:05+00'),
          (2, E'two\nlines\r\nand crlf', '\x'::bytea, NULL, NULL),
          (3, '', NULL, 0, NULL),
          (4, NULL, NULL, NULL, NULL),
          (5, 'ünïcödé ✓ 漢字', '\xdeadbeef', -2, '2026-11-30 12:00:00+00');
        CREATE SCHEMA "Schéma ü";
        CREATE TABLE "Schéma ü"."Tâble, ""quoted""/slash" ("Cölumn, 1" text, "naïve" int);
        INSERT INTO "Schéma ü"."Tâble, ""quoted""/slash" VALUES ('x', 1), (NULL, 2), ('', NULL);
        CREATE TABLE public.big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 5000) g;
        CREATE TABLE public.empty (a int);
        CREATE MATERIALIZED VIEW public.mv AS SELECT count(*) FROM public.big;
        """#

    init(documents: Bool = true) throws {
        cluster = try ScratchCluster(label: "export-src")
        try cluster.start()
        try cluster.sql(Self.setupSQL)
        if documents { try makeDocuments() }
    }

    func makeDocuments() throws {
        let fm = FileManager.default
        try fm.createDirectory(at: docs.appendingPathComponent("invoices/2026"), withIntermediateDirectories: true)
        try fm.createDirectory(at: docs.appendingPathComponent("empty folder"), withIntermediateDirectories: true)
        try Data("invoice 1\n".utf8).write(to: docs.appendingPathComponent("invoices/2026/inv-1.txt"))
        try Data("Grüße, ✓ 100%\n".utf8).write(to: docs.appendingPathComponent("Übersicht 100% ✓.txt"))
        try Data("two\nlines".utf8).write(to: docs.appendingPathComponent("line\nbreak.txt"))
        try Data().write(to: docs.appendingPathComponent("empty.bin"))
        var rng = SeededRandom(seed: 7)
        try Data(rng.bytes(3 << 20 + 17)).write(to: docs.appendingPathComponent("invoices/scan.pdf"))
        try fm.createSymbolicLink(atPath: docs.appendingPathComponent("latest").path, withDestinationPath: "invoices/2026/inv-1.txt")
    }

    func export(_ name: String, roots: [LiveFolderSource.Root]? = nil, dsn: String? = "", source: (any DocumentSource)? = nil) throws -> ExportResult {
        let docsSource: (any DocumentSource)? = source ?? LiveFolderSource(roots: roots ?? [.init(path: docs.path, label: "docs")])
        return try Exporter.run(
            ExportRequest(
                tenant: "acme", output: dir.sub(name).path, documents: docsSource,
                databaseDSN: dsn == "" ? cluster.dsn : dsn, pgBinDirectory: ScratchCluster.bin,
                now: Date(timeIntervalSince1970: 1_790_000_000), by: "test"))
    }

    /// Unpacks an archive with tools other than Tresor (GNU tar, zstd, Python's zipfile) and returns the bag folder.
    func unpack(_ result: ExportResult) throws -> URL {
        let target = dir.sub("unpacked-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        switch result.format {
        case .tar: try sh("tar -xf '\(result.archive)' -C '\(target.path)'")
        case .tarZstd: try sh("tar --zstd -xf '\(result.archive)' -C '\(target.path)'")
        case .zip: try sh("python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' '\(result.archive)' '\(target.path)'")
        }
        return target.appendingPathComponent(result.bagName)
    }
}

/// Runs a shell command; returns standard output; throws with standard error on failure.
@discardableResult
func sh(_ command: String) throws -> String {
    try ScratchCluster.run("/bin/bash", ["-c", command], asPostgres: false)
}

/// Runs a shell command and returns its exit status and combined output.
func shStatus(_ command: String) -> (Int32, String) {
    do {
        let out = try sh("{ \(command) ; } 2>&1; echo \"rc=$?\"")
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        let rc = lines.last(where: { $0.hasPrefix("rc=") }).flatMap { Int32($0.dropFirst(3)) } ?? -1
        return (rc, out)
    } catch {
        return (-1, "\(error)")
    }
}
