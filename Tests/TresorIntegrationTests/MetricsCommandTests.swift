import Foundation
import Testing
import TresorTestSupport

/// `tresor metrics --out FILE`: what node_exporter's textfile collector reads.
@Suite struct MetricsCommandTests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 10; o.largeFiles = 0; return o
    }()

    /// Parses the file with prometheus_client's parser (the reference Python client) and
    /// returns `name{sorted labels} value` lines.
    func parse(_ path: String) throws -> [String] {
        let script = """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
                for s in fam.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    print(f"{s.name}{{{labels}}} {float(s.value)!r}")
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "prometheus_client could not parse \(path): \(errText)")
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func theMetricsFileParsesAndCarriesLastSuccessDrillAndWorkerFigures() throws {
        let f = try Fixture(corpus: Self.small)
        let backup = try f.expectOK(["docs", "backup", "acme", "--json", "--now", "2026-11-20T10:00:00Z"])
        let bytesRead = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["bytesRead"] as? Int)
        try FileManager.default.removeItem(atPath: f.storePath)
        try "not a store".write(toFile: f.storePath, atomically: true, encoding: .utf8)
        #expect(try f.tresor.run(["docs", "backup", "acme", "--now", "2026-11-21T10:00:00Z"]).code == 2)

        let out = f.dir.sub("textfile/tresor.prom").path
        try FileManager.default.createDirectory(atPath: f.dir.sub("textfile").path, withIntermediateDirectories: true)
        let r = try f.expectOK(["metrics", "--out", out, "--now", "2026-11-22T10:00:00Z"])
        #expect(r.stdout.hasPrefix("wrote "))

        let samples = try parse(out)
        #expect(samples.contains("tresor_last_success_timestamp_seconds{job=docs-backup,tenant=acme} \(Double(1_795_168_800))"), "\(samples)")
        #expect(samples.contains("tresor_last_success_bytes{job=docs-backup,tenant=acme} \(Double(bytesRead))"), "\(samples)")
        // Nobody ran a drill: never passed, and no age sample that could look fresh.
        #expect(samples.contains("tresor_drill_passed_ever{tenant=acme} 0.0"), "\(samples)")
        #expect(!samples.contains { $0.hasPrefix("tresor_drill_last_pass_age_seconds") })
        let host = ProcessInfo.processInfo.hostName
        #expect(samples.contains("tresor_worker_runs{result=failed,worker=\(host)} 1.0"), "\(samples)")
        #expect(samples.contains("tresor_worker_runs{result=ok,worker=\(host)} 1.0"), "\(samples)")

        // Atomic and readable by node_exporter: no temporary file left, mode 0644.
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.dir.sub("textfile").path) == ["tresor.prom"])
        #expect(try FileManager.default.attributesOfItem(atPath: out)[.posixPermissions] as? Int == 0o644)
    }

    @Test func anEndedContractShowsItsDeletionDeadline() throws {
        let f = try Fixture(corpus: Self.small)
        try f.expectOK(["tenant", "end-contract", "acme", "--date", "2026-11-01"])
        let out = f.dir.sub("tresor.prom").path
        try f.expectOK(["metrics", "--out", out, "--now", "2026-11-22T10:00:00Z"])
        let samples = try parse(out)
        // 2026-11-01T00:00Z and 90 days later, 2027-01-30T00:00Z (the default delay).
        #expect(samples.contains("tresor_contract_end_timestamp_seconds{tenant=acme} \(Double(1_793_491_200))"), "\(samples)")
        #expect(samples.contains("tresor_deletion_deadline_timestamp_seconds{tenant=acme} \(Double(1_801_267_200))"), "\(samples)")
    }

    @Test func aMissingOutputDirectoryFailsAndLeavesNoFile() throws {
        let f = try Fixture(corpus: Self.small)
        let r = try f.tresor.run(["metrics", "--out", f.dir.sub("no/such/dir/tresor.prom").path])
        #expect(r.code == 1, "\(r.stderr)")
        #expect(r.stderr.contains("error: cannot create"), "\(r.stderr)")
    }
}
