import Foundation
import Testing
import TresorTestSupport

/// Every command's `--json` output is what its schema in docs/json/ says (checked with
/// python3's jsonschema, Draft 2020-12).
@Suite struct JSONSchemaTests {
    static let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/json")

    /// The commands run, in order, on one home; the schema is docs/json/<words joined by ->.schema.json.
    /// `$LINK` in an argument stands for the `link` the previous command printed; `docs dump` prints its
    /// JSON summary on standard error (standard output is the file).
    static func commands(_ f: Fixture) throws -> [(schema: String, args: [String])] {
        let d = f.dir
        let firstFile = try #require(FileManager.default.subpathsOfDirectory(atPath: f.docs.path).sorted().first {
            var dir: ObjCBool = false
            return FileManager.default.fileExists(atPath: f.docs.appendingPathComponent($0).path, isDirectory: &dir) && !dir.boolValue
        })
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
            ("docs dump", ["docs", "dump", "beta", "docs/" + firstFile]),
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
            ("export", ["export", "beta", "--publish", "--out", "beta-published.tar"]),
            ("export link", ["export", "link", "beta", "beta-published.tar"]),
            ("export revoke", ["export", "revoke", "$LINK"]),
            ("evidence export-key", ["evidence", "export-key"]),
            ("evidence rotate-key", ["evidence", "rotate-key"]),
            ("evidence replicate", ["evidence", "replicate", "--to", "off"]),
            ("keys rotate-master", ["keys", "rotate-master"]),
            ("keys rotate-master", ["keys", "rotate-master", "--finish"]),
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
        var link = ""
        for (i, c) in try Self.commands(f).enumerated() {
            let r = try f.tresor.run(c.args.map { $0 == "$LINK" ? link : $0 } + ["--json"])
            let output = c.schema == "docs dump" ? r.stderr : r.stdout
            // 3: drill status and the report find the never-drilled tenants overdue; 2: the error case.
            #expect(c.schema == "error" ? r.code == 2 : [0, 3].contains(r.code), "\(c.args): exit \(r.code): \(r.stderr)")
            #expect(!output.isEmpty && !output.contains("\u{1B}"), "\(c.args)")
            if c.schema == "export link" {
                link = (try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])?["link"] as? String ?? ""
            }
            let file = out.appendingPathComponent("\(i).json")
            try Data(output.utf8).write(to: file)
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

    /// Commands that print no JSON value of their own, and why.
    static let withoutJSON: [String: String] = [
        "pg wal-fetch": "restore_command: its output is the WAL file it writes; messages go to PostgreSQL's log",
        "pg wal-prefetch": "started by wal-fetch in the background; prints nothing",
        "serve": "a server: prints only the address it listens on",
    ]

    /// Commands that print JSON but have no schema in docs/json/ yet (they need a PostgreSQL cluster
    /// to run; see docs/json.md). Shrink this list; never grow it.
    static let schemaMissing: Set<String> = [
        "pg setup", "pg wal-push", "pg basebackup", "pg restore", "pg window", "pg stream",
        "drill run", "drill self-test", "catalog migrate",
    ]

    /// The leaf commands of the CLI, as its own `--experimental-dump-help` describes them; a group's
    /// default subcommand also answers to the group's name (`export` is `export create`).
    static func leafCommands(_ command: [String: Any], prefix: [String] = []) -> [String] {
        let name = command["commandName"] as? String ?? ""
        let path = prefix.isEmpty ? [] : prefix + [name]  // the root is `tresor`
        let subcommands = command["subcommands"] as? [[String: Any]] ?? []
        if subcommands.isEmpty { return [path.joined(separator: " ")] }
        let defaultName = command["defaultSubcommand"] as? String
        return subcommands.flatMap { sub -> [String] in
            let leaves = leafCommands(sub, prefix: prefix.isEmpty ? ["tresor"] : path)
            return sub["commandName"] as? String == defaultName ? leaves.map { _ in path.joined(separator: " ") } : leaves
        }.map { $0.hasPrefix("tresor ") ? String($0.dropFirst("tresor ".count)) : $0 }
    }

    @Test func aCommandWithoutADocumentedJSONSchemaFailsTheSuite() throws {
        let home = TempDirectory("tresor-it")
        let r = try TresorProcess(home: home.sub("home").path).run(["--experimental-dump-help"])
        #expect(r.code == 0, "\(r.stderr)")
        let tool = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let leaves = Set(Self.leafCommands(try #require(tool["command"] as? [String: Any])))
        #expect(leaves.contains("docs backup") && leaves.contains("export") && leaves.contains("export link"), "\(leaves.sorted())")
        let documented = Set(try FileManager.default.contentsOfDirectory(atPath: Self.docs.path)
            .filter { $0.hasSuffix(".schema.json") }.map { String($0.dropLast(".schema.json".count)) })
        for command in leaves.sorted() where Self.withoutJSON[command] == nil {
            let file = command.replacingOccurrences(of: " ", with: "-")
            if Self.schemaMissing.contains(command) {
                #expect(!documented.contains(file), "\(command) has a schema now: take it off schemaMissing")
            } else {
                #expect(documented.contains(file), "tresor \(command) --json has no docs/json/\(file).schema.json")
            }
        }
        // The lists name real commands only.
        #expect(Set(Self.withoutJSON.keys).union(Self.schemaMissing).subtracting(leaves).isEmpty)
    }
}
