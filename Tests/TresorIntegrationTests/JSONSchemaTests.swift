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
        let firstFile = try #require(
            FileManager.default.subpathsOfDirectory(atPath: f.docs.path).sorted().first {
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
        // (those of the commands that need PostgreSQL are exercised by the test after this one).
        let postgres = Self.postgresCommands.map { $0.replacingOccurrences(of: " ", with: "-") + ".schema.json" }
        #expect(Set(documented) == Set(pairs.map { URL(fileURLWithPath: $0[0]).lastPathComponent } + postgres))

        try Self.validate(pairs, in: out)
    }

    /// Commands that print no JSON value of their own, and why.
    static let withoutJSON: [String: String] = [
        "pg wal-fetch": "restore_command: its output is the WAL file it writes; messages go to PostgreSQL's log",
        "pg wal-prefetch": "started by wal-fetch in the background; prints nothing",
        "serve": "a server: prints only the address it listens on",
        "help": "prints usage text (ArgumentParser's help subcommand)",
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
        let documented = Set(
            try FileManager.default.contentsOfDirectory(atPath: Self.docs.path)
                .filter { $0.hasSuffix(".schema.json") }.map { String($0.dropLast(".schema.json".count)) })
        for command in leaves.sorted() where Self.withoutJSON[command] == nil {
            let file = command.replacingOccurrences(of: " ", with: "-")
            #expect(documented.contains(file), "tresor \(command) --json has no docs/json/\(file).schema.json")
        }
        // The lists name real commands only.
        #expect(Set(Self.withoutJSON.keys).subtracting(leaves).isEmpty)
    }

    /// Validates each output file against its schema file (pairs of paths) with python3's jsonschema;
    /// with TRESOR_JSON_SAMPLES set, also copies the outputs there (samples for scripts/json-schema-draft.py).
    static func validate(_ pairs: [[String]], in out: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
        if let samples = ProcessInfo.processInfo.environment["TRESOR_JSON_SAMPLES"] {
            for pair in pairs {
                let name = URL(fileURLWithPath: pair[0]).lastPathComponent.replacingOccurrences(of: ".schema.json", with: "")
                let target = URL(fileURLWithPath: samples).appendingPathComponent("\(name)-\(URL(fileURLWithPath: pair[1]).lastPathComponent)")
                try? FileManager.default.removeItem(at: target)  // a sample from an earlier run is replaced
                try FileManager.default.copyItem(at: URL(fileURLWithPath: pair[1]), to: target)
            }
        }
        let list = out.appendingPathComponent("pairs.json")
        try JSONSerialization.data(withJSONObject: pairs).write(to: list)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", "-c",
            """
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
            """, list.path,
        ]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)", sourceLocation: sourceLocation)
        #expect(text.contains("checked \(pairs.count)"), "\(text)", sourceLocation: sourceLocation)
    }

    /// The commands `postgresCommandsJSONOutputMatchesItsDocumentedSchema` runs.
    static let postgresCommands: Set<String> = [
        "pg setup", "pg basebackup", "pg window", "pg wal-push", "pg restore", "drill run", "drill self-test", "pg stream", "catalog migrate",
    ]

    /// The commands that need a PostgreSQL cluster, all on one cluster (with data checksums, for the drill).
    @Test func postgresCommandsJSONOutputMatchesItsDocumentedSchema() throws {
        let dir = TempDirectory("tresor-pgjson")
        let tresor = TresorProcess(home: dir.sub("home").path)
        let cluster = try ScratchCluster(label: "pgjson", checksums: true)
        let docs = dir.sub("docs")
        try CorpusBuilder.build(at: docs, options: TickTests.small)
        let out = dir.sub("json")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var pairs: [[String]] = []
        /// Runs a command; with a schema, with --json and keeps its output for validation.
        @discardableResult
        func run(_ schema: String?, _ args: [String], codes: [Int32] = [0]) throws -> [String: Any] {
            let r = try tresor.run(args + (schema == nil ? [] : ["--json"]))
            #expect(codes.contains(r.code), "\(args): exit \(r.code): \(r.stderr) \(r.stdout)")
            guard let schema else { return [:] }
            let file = out.appendingPathComponent("\(pairs.count).json")
            try Data(r.stdout.utf8).write(to: file)
            pairs.append([Self.docs.appendingPathComponent(schema.replacingOccurrences(of: " ", with: "-") + ".schema.json").path, file.path])
            return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]  // the schema check reports bad JSON
        }
        try run(nil, ["init"])
        try run(nil, ["store", "add", "local", "--url", "file://" + dir.sub("store").path, "--region", "eu-central"])
        try run(nil, ["tenant", "add", "acme", "--region", "eu-central", "--store", "local", "--pg", cluster.dsn, "--docs", docs.path])
        let setup = try run("pg setup", ["pg", "setup", "acme"])
        let archiveCommand = try #require((setup["settings"] as? [String: String])?["archive_command"])
        try cluster.appendSettings(["archive_mode": "on", "archive_command": "'\(archiveCommand)'"])
        try cluster.start()
        try cluster.sql("CREATE TABLE marker (id int PRIMARY KEY, at timestamptz NOT NULL)")
        try run(nil, ["docs", "backup", "acme"])
        try run("pg basebackup", ["pg", "basebackup", "acme"])
        for i in 1...3 { try cluster.sql("INSERT INTO marker VALUES (\(i), clock_timestamp())") }
        try cluster.switchAndWaitForArchive()
        try run("pg window", ["pg", "window", "acme"])
        // An archived segment pushed again: the archive accepts an identical second push.
        let wal = try #require(
            try FileManager.default.contentsOfDirectory(atPath: cluster.dataDirectory + "/pg_wal")
                .filter { $0.count == 24 && $0.allSatisfy(\.isHexDigit) }.sorted().first)
        try run("pg wal-push", ["pg", "wal-push", "acme", cluster.dataDirectory + "/pg_wal/" + wal])
        try run("pg restore", ["pg", "restore", "acme", "--pgdata", dir.sub("restored").path, "--latest"])
        try run("drill run", ["drill", "run", "acme", "--target", "latest", "--seed", "7"], codes: [0, 3])
        try run("drill self-test", ["drill", "self-test", "acme", "--seed", "7"], codes: [0, 3])

        // pg stream prints one JSON line per event until SIGTERM: the first line is checked.
        let stream = tresor.start(["pg", "stream", "acme", "--json"])
        let pipe = Pipe()
        stream.standardOutput = pipe
        stream.standardError = FileHandle.nullDevice
        try stream.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // the process ended: the empty output fails the schema check
            line.append(chunk)
        }
        stream.terminate()
        stream.waitUntilExit()
        let file = out.appendingPathComponent("\(pairs.count).json")
        try line.prefix { $0 != UInt8(ascii: "\n") }.write(to: file)
        pairs.append([Self.docs.appendingPathComponent("pg-stream.schema.json").path, file.path])

        // Last, as it moves the catalog: into a database of the same cluster.
        try cluster.sql("CREATE DATABASE tresor_catalog")
        try run("catalog migrate", ["catalog", "migrate", "--from", "sqlite", "--to", "postgresql://postgres@127.0.0.1:\(cluster.port)/tresor_catalog"])
        let ran = Set(pairs.map { URL(fileURLWithPath: $0[0]).lastPathComponent })
        #expect(ran == Set(Self.postgresCommands.map { $0.replacingOccurrences(of: " ", with: "-") + ".schema.json" }))
        try Self.validate(pairs, in: out)
    }

    /// Each leaf command (words) with the long names of its flags (options that take no value).
    /// Required positional arguments are given as `x`, so the parser gets as far as the options.
    static func flags(_ command: [String: Any], prefix: [String] = []) -> [(command: [String], flag: String)] {
        let path = command["superCommands"] == nil && prefix.isEmpty ? [] : prefix + [command["commandName"] as? String ?? ""]
        var found: [(command: [String], flag: String)] = []
        let positionals = (command["arguments"] as? [[String: Any]] ?? []).filter {
            $0["kind"] as? String == "positional" && $0["isOptional"] as? Bool != true
        }.map { _ in "x" }
        for argument in command["arguments"] as? [[String: Any]] ?? [] where argument["kind"] as? String == "flag" {
            for name in argument["names"] as? [[String: Any]] ?? [] where name["kind"] as? String == "long" {
                if let n = name["name"] as? String, n != "help", n != "version" { found.append((path + positionals, "--" + n)) }
            }
        }
        for sub in command["subcommands"] as? [[String: Any]] ?? [] { found += flags(sub, prefix: path.isEmpty ? [""] : path) }
        return found.map { (Array($0.command.drop { $0.isEmpty }), $0.flag) }  // the root's name is left out
    }

    /// `--json` after a flag is the global option, not the flag's value (`keys rotate-master --finish
    /// --json` was refused with "unknown option '--json'"). Run on a home that does not exist, so
    /// nothing is done.
    @Test func jsonAfterAFlagIsStillTheGlobalOption() throws {
        let home = TempDirectory("tresor-it")
        let tresor = TresorProcess(home: home.sub("absent").path)
        let dump = try tresor.run(["--experimental-dump-help"])
        let tool = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let all = Self.flags(try #require(tool["command"] as? [String: Any]))
        #expect(all.contains { $0.command == ["keys", "rotate-master"] && $0.flag == "--finish" }, "\(all)")
        #expect(all.contains { $0.command == ["repair", "snapshots", "x"] && $0.flag == "--remove" }, "\(all)")
        for (command, flag) in all where command.first != "init" {
            let r = try tresor.run(command + [flag, "--json"])
            #expect(!(r.stdout + r.stderr).contains("'--json'"), "tresor \(command.joined(separator: " ")) \(flag) --json: \(r.stderr)")
        }
    }
}
