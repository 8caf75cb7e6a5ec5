import Foundation
import Testing
import TresorTestSupport

/// Every command's `--json` output is what its schema in docs/json/ says (checked with
/// python3's jsonschema, Draft 2020-12).
@Suite struct JSONSchemaTests {
    static let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/json")

    /// The commands run, in order, on one home; the schema is docs/json/<words joined by ->.schema.json.
    static func commands(_ f: Fixture) -> [(schema: String, args: [String])] {
        let d = f.dir
        return [
            ("init", ["init"]),
            ("store add", ["store", "add", "off", "--url", "file://" + d.sub("off").path, "--region", "eu-central"]),
            ("store list", ["store", "list"]),
            ("tenant add", ["tenant", "add", "beta", "--region", "eu-central", "--store", "local", "--offsite", "off", "--docs", f.docs.path]),
            ("tenant list", ["tenant", "list"]),
            ("docs backup", ["docs", "backup", "beta"]),
            ("docs restore", ["docs", "restore", "beta", "--to", d.sub("restored").path]),
            ("docs ls", ["docs", "ls", "beta"]),
            ("docs find", ["docs", "find", "beta", "*"]),
            ("docs diff", ["docs", "diff", "beta", "latest", "latest"]),
            ("snapshots", ["snapshots", "beta"]),
            ("check", ["check", "beta", "--read-data"]),
            ("replicate", ["replicate", "beta"]),
            ("store clean", ["store", "clean", "local"]),
            ("retention plan", ["retention", "plan", "beta"]),
            ("retention apply", ["retention", "apply", "beta"]),
            ("jobs", ["jobs"]),
            ("metrics", ["metrics", "--out", d.sub("tresor.prom").path]),
            ("tick", ["tick"]),
            ("drill status", ["drill", "status"]),
            ("drill clean", ["drill", "clean"]),
            ("evidence verify", ["evidence", "verify"]),
            ("evidence list", ["evidence", "list"]),
            ("evidence report", ["evidence", "report", "--out", d.sub("report.html").path]),
            ("export", ["export", "beta", "--out", d.sub("beta.tar").path]),
            ("region approve", ["region", "approve", "beta", "--store", "off", "--by", "auditor", "--reason", "test"]),
            ("repair index", ["repair", "index", "beta"]),
            ("repair snapshots", ["repair", "snapshots", "beta"]),
            ("tenant hold", ["tenant", "hold", "beta", "--reason", "legal", "--by", "counsel"]),
            ("tenant release", ["tenant", "release", "beta"]),
            ("tenant end-contract", ["tenant", "end-contract", "beta", "--date", "2026-01-01"]),
            ("deletion calendar", ["deletion", "calendar"]),
            ("deletion run", ["deletion", "run", "--dry-run"]),
            ("sweep", ["sweep"]),
            ("error", ["docs", "backup", "nobody"]),
        ]
    }

    @Test func everyCommandsJSONOutputMatchesItsDocumentedSchema() throws {
        let f = try Fixture(corpus: TickTests.small)
        let out = f.dir.sub("json")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var pairs: [[String]] = []
        for (i, c) in Self.commands(f).enumerated() {
            let r = try f.tresor.run(c.args + ["--json"])
            // 3: drill status and the report find the never-drilled tenants overdue; 2: the error case.
            #expect(c.schema == "error" ? r.code == 2 : [0, 3].contains(r.code), "\(c.args): exit \(r.code): \(r.stderr)")
            #expect(!r.stdout.isEmpty && !r.stdout.contains("\u{1B}"), "\(c.args)")
            let file = out.appendingPathComponent("\(i).json")
            try Data(r.stdout.utf8).write(to: file)
            pairs.append([Self.docs.appendingPathComponent(c.schema.replacingOccurrences(of: " ", with: "-") + ".schema.json").path, file.path])
        }
        // Every documented schema is exercised here, and every schema is itself valid.
        let documented = try FileManager.default.contentsOfDirectory(atPath: Self.docs.path).filter { $0.hasSuffix(".schema.json") }
        #expect(Set(documented) == Set(pairs.map { URL(fileURLWithPath: $0[0]).lastPathComponent }))

        let list = out.appendingPathComponent("pairs.json")
        try JSONSerialization.data(withJSONObject: pairs).write(to: list)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", """
            import json, sys, jsonschema
            bad = 0
            for schema, output in json.load(open(sys.argv[1])):
                s = json.load(open(schema))
                jsonschema.Draft202012Validator.check_schema(s)
                for e in jsonschema.Draft202012Validator(s).iter_errors(json.load(open(output))):
                    bad += 1
                    print(schema.rsplit("/", 1)[1], "/".join(map(str, e.absolute_path)), e.message[:200])
            print("checked", len(json.load(open(sys.argv[1]))))
            sys.exit(1 if bad else 0)
            """, list.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("checked \(pairs.count)"), "\(text)")
    }
}
