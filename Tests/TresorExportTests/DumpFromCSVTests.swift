import Foundation
import Testing
import TresorCore
import TresorTestSupport

@testable import TresorExport

/// dump.sql carries each table's rows as the bytes of its CSV file (one COPY pass per table):
/// what that must not lose.
@Suite("Export dump.sql from the CSV copies", .serialized)
struct DumpFromCSVTests {
    /// Tables whose CSV dump.sql cannot reuse, a sequence, a partitioned table; (name, query) pairs
    /// compare source and restored copy.
    static let extraSQL = #"""
        CREATE TABLE public.marker (id int PRIMARY KEY, v text);
        INSERT INTO public.marker VALUES (1, E'before\n\\.\nafter'), (2, E'crlf\r\n\\.\r\nend'), (3, '\.'), (4, E'\\.\n');
        CREATE TABLE public.lone (v text);
        INSERT INTO public.lone VALUES ('\.'), (''), (NULL), (E'\\.x\n\\.y');
        CREATE TABLE public.gen (a int, doubled int GENERATED ALWAYS AS (a * 2) STORED, b text);
        INSERT INTO public.gen (a, b) VALUES (1, 'one'), (2, NULL);
        CREATE TABLE public.nocols ();
        INSERT INTO public.nocols DEFAULT VALUES; INSERT INTO public.nocols DEFAULT VALUES;
        CREATE SEQUENCE public.counter START 1;
        SELECT setval('public.counter', 4242, true);
        CREATE TABLE public.withserial (id bigserial PRIMARY KEY, v text);
        INSERT INTO public.withserial (v) SELECT 'r' || g FROM generate_series(1, 37) g;
        CREATE TABLE public.measure (at date NOT NULL, v int) PARTITION BY RANGE (at);
        CREATE TABLE public.measure_2025 PARTITION OF public.measure FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE public.measure_2026 PARTITION OF public.measure FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        INSERT INTO public.measure VALUES ('2025-05-01', 1), ('2026-05-01', 2), ('2026-06-01', NULL);
        CREATE TABLE public.parent_fk (id int PRIMARY KEY);
        CREATE TABLE public.child_fk (id int PRIMARY KEY, parent int REFERENCES public.parent_fk);
        INSERT INTO public.parent_fk VALUES (1), (2); INSERT INTO public.child_fk VALUES (10, 1), (20, 2);
        """#

    @Test("dump.sql holds each CSV file's bytes and restores values with a \\. line, generated columns, sequences and partitions")
    func dumpThatReadsTheDatabaseTwiceOrLosesRows() throws {
        let f = try ExportFixture(documents: false)
        try f.cluster.sql(Self.extraSQL)
        let r = try f.export("db.tar", source: LiveFolderSource(roots: []))
        let bag = try f.unpack(r)
        let dumpURL = bag.appendingPathComponent("data/database/dump.sql")
        let dump = try Data(contentsOf: dumpURL)
        func csv(_ file: String) throws -> Data {
            try Data(contentsOf: bag.appendingPathComponent("data/database/tables/\(file)"))
        }
        // A table whose CSV loads as it is: its COPY block in dump.sql is the CSV file, byte for byte.
        for (file, load) in [
            ("public.awkward.csv", "COPY public.awkward (id, t, b, n, ts) FROM stdin WITH (FORMAT csv, HEADER true);\n"),
            ("public.big.csv", "COPY public.big (id, h) FROM stdin WITH (FORMAT csv, HEADER true);\n"),
            ("public.measure_2026.csv", "COPY public.measure_2026 (at, v) FROM stdin WITH (FORMAT csv, HEADER true);\n"),
            (
                "Schéma ü.Tâble, \"quoted\"%2Fslash.csv",
                "COPY \"Schéma ü\".\"Tâble, \"\"quoted\"\"/slash\" (\"Cölumn, 1\", \"naïve\") FROM stdin WITH (FORMAT csv, HEADER true);\n"
            ),
        ] {
            let block = Data(load.utf8) + (try csv(file)) + Data("\\.\n".utf8)
            #expect(dump.range(of: block) != nil, "dump.sql has no COPY block with the bytes of \(file)")
        }
        // Tables whose CSV psql cannot load as it is keep pg_dump's own (text format) COPY.
        let text = String(decoding: dump, as: UTF8.self)
        let copyLines = text.split(separator: "\n").filter { $0.hasPrefix("COPY ") }
        for table in ["public.marker", "public.gen", "public.nocols"] {
            let lines = copyLines.filter { $0.hasPrefix("COPY \(table) ") }
            #expect(lines.count == 1 && !lines[0].contains("FORMAT csv"), "\(table): \(lines)")
        }
        #expect(text.contains("COPY public.lone (v) FROM stdin WITH (FORMAT csv, HEADER true);\n"), "public.lone's values are quoted: its CSV is reusable")
        // Every table's rows once: no table is loaded twice.
        for table in ["public.awkward", "public.big", "public.marker", "public.gen", "public.withserial", "public.measure_2025"] {
            #expect(text.components(separatedBy: "\nCOPY \(table) ").count == 2, "\(table) has more or less than one COPY in dump.sql")
        }

        let target = try ScratchCluster(label: "export-csv-dst")
        try target.start()
        try ScratchCluster.run(
            ScratchCluster.bin + "/psql",
            [
                "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(target.port)",
                "-U", "postgres", "-d", "postgres", "-f", dumpURL.path,
            ],
            asPostgres: false)
        let tables = [
            "public.awkward", "public.big", "public.empty", #""Schéma ü"."Tâble, ""quoted""/slash""#, "public.marker", "public.lone",
            "public.gen", "public.nocols", "public.withserial", "public.measure", "public.measure_2025", "public.child_fk",
        ]
        for t in tables {
            let q = "SELECT count(*) || ' ' || md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM \(t) x"
            let source = try f.cluster.sql(q), restored = try target.sql(q)
            #expect(source == restored, "\(t): source \(source), restored \(restored)")
        }
        // Sequence values survive (one set explicitly, one behind a bigserial).
        for q in ["SELECT last_value || ' ' || is_called FROM public.counter", "SELECT last_value || ' ' || is_called FROM public.withserial_id_seq"] {
            let source = try f.cluster.sql(q), restored = try target.sql(q)
            #expect(source == restored, "\(q): source \(source), restored \(restored)")
        }
        #expect(try target.sql("SELECT last_value FROM public.counter") == "4242")
        // NULL and the empty string stay apart; the generated column is recomputed.
        #expect(try target.sql("SELECT count(*) FILTER (WHERE v IS NULL) || ' ' || count(*) FILTER (WHERE v = '') FROM public.lone") == "1 1")
        #expect(try target.sql("SELECT string_agg(doubled::text, ',' ORDER BY a) FROM public.gen") == "2,4")
        // The constraints made after the data hold.
        #expect(try target.sql("SELECT count(*) FROM pg_constraint WHERE conname = 'child_fk_parent_fkey'") == "1")
    }

    @Test("a line that is exactly \\. inside a CSV value is found, with LF or CR LF, and nothing else is")
    func endMarkerLineThatPsqlWouldTakeForTheEndOfTheData() {
        func check(_ s: String) -> Bool {
            Array(s.utf8).withUnsafeBytes { LiveDatabaseExport.hasEndMarkerLine($0) }
        }
        #expect(check("\"1\",\"a\n\\.\nb\"\n"))
        #expect(check("\"1\",\"a\r\n\\.\r\nb\"\n"))
        #expect(check("\"x\n\\.\n\"\n"))
        #expect(!check("\"1\",\"\\.\"\n"))
        #expect(!check("\"\\x00ff\",\"\\.\"\n\"2\",\"\\\\.\"\n"))
        #expect(!check("\"a\n\\.x\n\"\n"))
        #expect(!check("\"a\n\\.\"\n"))
        #expect(!check("\"a\n\\.\r\"\n"))
        #expect(!check(""))
    }
}
