import Foundation
import Testing
import TresorCore
import TresorTestSupport

@testable import TresorExport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Export", .serialized)
struct ExportTests {
    @Test(
        "bagit.py --validate accepts tar, tar.zst and zip exports of awkward documents and tables",
        arguments: ["bag.tar", "bag.tar.zst", "bag.zip"])
    func exportThatBagitRejects(name: String) throws {
        let f = try ExportFixture()
        let r = try f.export(name)
        #expect(r.problems.isEmpty, "\(r.problems)")
        let bag = try f.unpack(r)
        let (status, output) = shStatus("bagit.py --validate '\(bag.path)'")
        #expect(status == 0, "bagit.py rejected the \(name) export: \(output)")
        // The archive's SHA-256 is what an outside tool computes.
        let outside = try sh("sha256sum '\(r.archive)'").split(separator: " ").first.map(String.init)
        #expect(outside == r.sha256)
        // Documents are byte for byte the originals, under their original names.
        let differences = TreeComparer.differences(
            f.docs.deletingLastPathComponent().appendingPathComponent("docs"),
            bag.appendingPathComponent("data/documents/docs"))
        // The symlink is listed in README.txt, not archived (BagIt has no links); pax keeps whole
        // seconds and Python's zipfile sets no times, so times are not compared here.
        #expect(differences.allSatisfy { $0 == "latest: only in first" || $0.contains(": mtime ") }, "\(differences)")
        let readme = try String(contentsOf: bag.appendingPathComponent("data/README.txt"), encoding: .utf8)
        #expect(readme.contains("docs/latest -> invoices/2026/inv-1.txt"))
        #expect(FileManager.default.fileExists(atPath: bag.appendingPathComponent("data/documents/docs/empty folder").path))
        let info = try String(contentsOf: bag.appendingPathComponent("bag-info.txt"), encoding: .utf8)
        #expect(info.contains("Tresor-Tenant: acme"))
        #expect(info.contains("Tresor-Database-Snapshot-LSN: \(r.database?.lsn ?? "?")"))
    }

    @Test("dump.sql loads into a fresh cluster and matches the source table by table")
    func dumpThatDoesNotRestoreTheSource() throws {
        let f = try ExportFixture(documents: false)
        let r = try f.export("db.tar.zst", dsn: "", source: LiveFolderSource(roots: []))
        let bag = try f.unpack(r)
        let target = try ScratchCluster(label: "export-dst")
        try target.start()
        try ScratchCluster.run(
            ScratchCluster.bin + "/psql",
            [
                "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(target.port)",
                "-U", "postgres", "-d", "postgres", "-f", bag.appendingPathComponent("data/database/dump.sql").path,
            ],
            asPostgres: false)
        let tables = [#"public.awkward"#, #"public.big"#, #"public.empty"#, #""Schéma ü"."Tâble, ""quoted""/slash""#, "public.mv"]
        for t in tables {
            let q = "SELECT count(*) || ' ' || md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM \(t) x"
            let source = try f.cluster.sql(q), restored = try target.sql(q)
            #expect(source == restored, "\(t): source \(source), restored \(restored)")
        }
        #expect(r.database?.tables.count == 4)
        #expect(r.database?.notCopied.contains { $0.hasPrefix("public.mv") } == true)
    }

    @Test("CSV files parse with Python's csv module, match row counts, and keep NULL apart from the empty string")
    func csvThatLosesRowsOrNulls() throws {
        let f = try ExportFixture(documents: false)
        let r = try f.export("csv.zip", source: LiveFolderSource(roots: []))
        let bag = try f.unpack(r)
        let tablesDir = bag.appendingPathComponent("data/database/tables")
        let script = """
            import csv, os, sys
            for name in sorted(os.listdir(sys.argv[1])):
                with open(os.path.join(sys.argv[1], name), newline='', encoding='utf-8') as fh:
                    rows = list(csv.reader(fh))
                print(name + '\\t' + str(len(rows) - 1) + '\\t' + '|'.join(rows[0]))
            """
        let out = try sh("python3 -c \"$(cat <<'PY'\n\(script)\nPY\n)\" '\(tablesDir.path)'")
        let parsed = Dictionary(
            uniqueKeysWithValues: out.split(separator: "\n").map { line -> (String, (String, String)) in
                let p = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                return (p[0], (p[1], p[2]))
            })
        let expected: [(String, String, String)] = [
            ("public.awkward.csv", "public.awkward", "id|t|b|n|ts"),
            ("public.big.csv", "public.big", "id|h"),
            ("public.empty.csv", "public.empty", "a"),
            ("Schéma ü.Tâble, \"quoted\"%2Fslash.csv", #""Schéma ü"."Tâble, ""quoted""/slash""#, "Cölumn, 1|naïve"),
        ]
        for (file, table, header) in expected {
            let count = try f.cluster.sql("SELECT count(*) FROM \(table)")
            #expect(parsed[file]?.0 == count, "\(file): python counted \(parsed[file]?.0 ?? "nothing"), the table has \(count)")
            #expect(parsed[file]?.1 == header)
        }
        // Raw CSV: empty string quoted, NULL an empty unquoted field, bytea hex, newlines inside quotes.
        let raw = try String(contentsOf: tablesDir.appendingPathComponent("public.awkward.csv"), encoding: .utf8)
        #expect(raw.contains("\"3\",\"\",,\"0\",\n"), "\(raw)")
        #expect(raw.contains("\"4\",,,,\n"), "\(raw)")
        #expect(raw.contains("\"\\x00ff10\""), "\(raw)")
        #expect(raw.contains("\"two\nlines\r\nand crlf\""), "\(raw)")
    }

    @Test("every CSV and dump.sql show one moment while transactions commit during the export")
    func tablesFromDifferentMomentsThatDisagree() throws {
        let f = try ExportFixture(documents: false)
        // Each transaction adds one row to both tables: at any one moment they hold as many rows.
        try f.cluster.sql("CREATE TABLE pair_a (id bigserial, v text); CREATE TABLE pair_b (id bigserial, v text)")
        let script = f.dir.sub("pair.sql")
        try Data("BEGIN;\nINSERT INTO pair_a (v) VALUES ('x');\nINSERT INTO pair_b (v) VALUES ('y');\nCOMMIT;\n".utf8).write(to: script)
        let stop = f.dir.sub("stop").path
        let writer = try Spawn.start(
            "/bin/bash",
            [
                "-c",
                """
                while [ ! -e '\(stop)' ]; do
                  \(ScratchCluster.bin)/pgbench -n -h 127.0.0.1 -p \(f.cluster.port) -U postgres -f '\(script.path)' -t 2000 postgres >/dev/null 2>&1 || exit 1
                done
                """,
            ])
        defer {
            _ = FileManager.default.createFile(atPath: stop, contents: nil)
            _ = Spawn.wait(writer)
        }
        // Let the writer get going, so the export runs while rows are committed.
        _ = try f.cluster.waitFor("SELECT count(*) > 500 FROM pair_a", toBe: "t", seconds: 60)
        let r = try f.export("moment.tar", source: LiveFolderSource(roots: []))
        let before = try f.cluster.sql("SELECT count(*) FROM pair_a")
        let bag = try f.unpack(r)
        let a = try sh(
            "python3 -c 'import csv,sys; print(len(list(csv.reader(open(sys.argv[1], newline=\"\"))))-1)' '\(bag.path)/data/database/tables/public.pair_a.csv'")
        let b = try sh(
            "python3 -c 'import csv,sys; print(len(list(csv.reader(open(sys.argv[1], newline=\"\"))))-1)' '\(bag.path)/data/database/tables/public.pair_b.csv'")
        #expect(a == b, "pair_a has \(a) rows in its CSV, pair_b \(b)")
        // dump.sql's COPY blocks hold the same rows as the CSVs (a CSV block's header line not counted).
        let dumpCounts = try sh(
            """
            awk '/^COPY public.pair_[ab] /{t=$2; n=/HEADER true/ ? -1 : 0; on=1; next} on && /^\\\\\\.$/{print t, n; on=0; next} on{n++}' '\(bag.path)/data/database/dump.sql'
            """)
        let trimmedA = a.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(dumpCounts.contains("public.pair_a \(trimmedA)") && dumpCounts.contains("public.pair_b \(trimmedA)"), "\(dumpCounts)")
        // And the writer did commit while the export ran (else this test proves nothing).
        #expect(Int(trimmedA) ?? 0 < Int(before) ?? 0, "rows at the snapshot \(trimmedA), after the export \(before)")
    }

    @Test("a name that is not UTF-8 is kept as bytes in tar and reported; escaped in zip, where bagit validates")
    func nonUTF8NameThatIsLostOrSilent() throws {
        let f = try ExportFixture(documents: false)
        let root = f.dir.sub("raw")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let name: [UInt8] = Array("caf".utf8) + [0xE9] + Array("%.txt".utf8)
        let fd = (root.path + "/").utf8CString.withUnsafeBufferPointer { _ in
            (Array((root.path + "/").utf8) + name + [0]).withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_WRONLY | O_CREAT, 0o644) }
            }
        }
        #expect(fd >= 0)
        _ = write(fd, "latin-1 name\n", 13)
        close(fd)
        let roots = [LiveFolderSource.Root(path: root.path, label: "raw")]

        let tar = try f.export("names.tar", roots: roots, dsn: nil)
        #expect(tar.outcome == .problemFound)
        #expect(tar.nonUTF8Names == ["data/documents/raw/caf\\xE9%.txt"])
        let names = try sh(
            "python3 -c 'import sys, tarfile, os; print(\"\\n\".join(os.fsencode(m.name).hex() for m in tarfile.open(sys.argv[1], encoding=\"utf-8\", errors=\"surrogateescape\")))' '\(tar.archive)'"
        )
        #expect(
            names.split(separator: "\n").contains(Substring((Array("names/data/documents/raw/".utf8) + name).map { String(format: "%02x", $0) }.joined())),
            "\(names)")

        let zip = try f.export("names.zip", roots: roots, dsn: nil)
        #expect(zip.outcome == .ok)
        #expect(zip.escapedNames == ["data/documents/raw/caf\\xE9%.txt"])
        let bag = try f.unpack(zip)
        #expect(FileManager.default.fileExists(atPath: bag.appendingPathComponent("data/documents/raw/caf%E9%25.txt").path))
        let (status, output) = shStatus("bagit.py --validate '\(bag.path)'")
        #expect(status == 0, "\(output)")
    }

    @Test("a fifo in a document folder is reported as not exported, and a missing root is a usage error")
    func specialFileThatIsSkippedSilently() throws {
        let f = try ExportFixture(documents: false)
        let root = f.dir.sub("special")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        #expect(mkfifo(root.appendingPathComponent("pipe").path, 0o644) == 0)
        try Data("x".utf8).write(to: root.appendingPathComponent("plain.txt"))
        let r = try f.export("special.tar", roots: [.init(path: root.path, label: "special")], dsn: nil)
        #expect(r.outcome == .problemFound)
        #expect(r.problems.map(\.path) == ["special/pipe"])
        #expect(r.documentFiles == 1)
        let bag = try f.unpack(r)
        #expect(try String(contentsOf: bag.appendingPathComponent("data/README.txt"), encoding: .utf8).contains("special/pipe: not a regular file"))

        #expect {
            _ = try f.export("missing.tar", roots: [.init(path: f.dir.sub("nope").path, label: "nope")], dsn: nil)
        } throws: { ($0 as? ExportError)?.code == .usage }
        #expect(!FileManager.default.fileExists(atPath: f.dir.sub("missing.tar").path))
    }

    @Test("a failed export leaves no archive and no temp files")
    func failedExportThatLeavesAPlausibleArchive() throws {
        let f = try ExportFixture()
        #expect(throws: (any Error).self) {
            _ = try f.export("fail.tar", dsn: "host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=2")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: f.dir.path).filter { $0.contains("fail") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test("a document that shrinks or grows while it is exported is reported, and the bag still validates")
    func changedDocumentThatIsSilentlyPadded() throws {
        let f = try ExportFixture(documents: false)
        let r = try f.export(
            "changed.tar", dsn: nil,
            source: ScriptedSource(entries: [
                (DocumentEntry(path: Array("d".utf8), kind: .directory, mode: 0o755, mtime: 0), nil),
                (DocumentEntry(path: Array("d/short".utf8), kind: .file(size: 100), mode: 0o644, mtime: 0), 50),
                (DocumentEntry(path: Array("d/long".utf8), kind: .file(size: 100), mode: 0o644, mtime: 0), 150),
                (DocumentEntry(path: Array("d/exact".utf8), kind: .file(size: 100), mode: 0o644, mtime: 0), 100),
            ]))
        #expect(r.outcome == .problemFound)
        #expect(r.problems.map(\.path) == ["d/short", "d/long"])
        let bag = try f.unpack(r)
        let (status, output) = shStatus("bagit.py --validate '\(bag.path)'")
        #expect(status == 0, "\(output)")
    }

    @Test("a sparse document of 3 GiB streams through tar.zst with its SHA-256 in the manifest")
    func largeDocumentThatIsTruncatedOrBuffered() throws {
        let f = try ExportFixture(documents: false)
        let root = f.dir.sub("big")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let path = root.appendingPathComponent("sparse.img").path
        let size: Int64 = 3 << 30
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        #expect(ftruncate(fd, off_t(size)) == 0)
        _ = pwrite(fd, "end", 3, off_t(size - 3))
        close(fd)
        let r = try f.export("sparse.tar.zst", roots: [.init(path: root.path, label: "big")], dsn: nil)
        #expect(r.documentBytes == size)
        // Python hashes the member as zstd hands it over, and reads the manifest, in one pass.
        let script = """
            import hashlib, sys, tarfile
            t = tarfile.open(fileobj=sys.stdin.buffer, mode='r|')
            digest, size, manifest, nonzero, tail = None, 0, '', 0, b''
            for m in t:
                if m.name == 'sparse/data/documents/big/sparse.img':
                    fh = t.extractfile(m); h = hashlib.sha256()
                    while True:
                        b = fh.read(1 << 20)
                        if not b: break
                        h.update(b); size += len(b); nonzero += len(b) - b.count(0); tail = (tail + b)[-3:]
                    digest = h.hexdigest()
                elif m.name == 'sparse/manifest-sha256.txt':
                    manifest = t.extractfile(m).read().decode()
            print(digest, size, (digest + '  data/documents/big/sparse.img') in manifest.splitlines(), nonzero == 3 and tail == b'end')
            """
        let out = try sh("zstd -dc '\(r.archive)' | python3 -c \"$(cat <<'PY'\n\(script)\nPY\n)\"")
        let parts = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
        // Size, the manifest line, and the file's known content (zeros, then "end").
        #expect(parts.count == 4 && parts[1] == "\(size)" && parts[2] == "True" && parts[3] == "True", "\(out)")
    }
}

/// A source whose files deliver a given number of bytes whatever they declare.
struct ScriptedSource: DocumentSource {
    let entries: [(DocumentEntry, Int?)]

    final class Bytes: DocumentContent {
        var left: Int
        init(_ n: Int) { left = n }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let n = min(left, buffer.count)
            for i in 0..<n { buffer[i] = UInt8(ascii: "x") }
            left -= n
            return n
        }
    }

    func walk(_ visit: (DocumentEntry, (any DocumentContent)?) throws -> Void) throws -> [DocumentProblem] {
        for (e, n) in entries { try visit(e, n.map { Bytes($0) }) }
        return []
    }
}
