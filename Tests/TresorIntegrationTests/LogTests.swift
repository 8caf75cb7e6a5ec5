import Foundation
import Testing
import TresorTestSupport

/// Structured logs: JSON lines with job, tenant and run ids, and never a secret in them.
@Suite struct LogTests {
    static let small: CorpusBuilder.Options = {
        var o = CorpusBuilder.Options(); o.smallFiles = 10; o.largeFiles = 0; return o
    }()

    @Test func noKeyPasswordOrS3SecretReachesLogsErrorsOrJSON() throws {
        let f = try Fixture(corpus: Self.small)
        let s3Secret = "S3secretValue-9f8e7d6c5b4a"
        let dsnPassword = "PassfileSecret-31415926"
        var tresor = f.tresor
        tresor.environment["AWS_ACCESS_KEY_ID"] = "AKIDEXAMPLE"
        tresor.environment["AWS_SECRET_ACCESS_KEY"] = s3Secret
        let masterKey = try String(contentsOfFile: f.home + "/keys/master.key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(masterKey.count >= 32)
        let log = f.dir.sub("tresor.log").path
        let logArgs = ["--log-level", "debug", "--log-file", log]

        var outputs: [String] = []
        func run(_ args: [String], stdin: String? = nil) throws -> Int32 {
            let r = try tresor.run(args + logArgs, stdin: stdin)
            outputs += [r.stdout, r.stderr]
            return r.code
        }
        #expect(
            try run(
                [
                    "tenant", "add", "pgt", "--region", "eu-central", "--store", "local",
                    "--pg", "host=/nonexistent-socket-dir dbname=app user=app", "--pg-password-stdin",
                ],
                stdin: dsnPassword + "\n") == 0)
        // The passfile really holds the password (so a leak would have something to leak).
        let passfiles = try FileManager.default.subpathsOfDirectory(atPath: f.home).filter { $0.contains("pgpass") || $0.contains("passfile") }
        #expect(!passfiles.isEmpty, "no passfile under the home")
        #expect(try run(["docs", "backup", "acme"]) == 0)
        #expect(try run(["pg", "basebackup", "pgt"]) == 1)
        #expect(try run(["pg", "basebackup", "pgt", "--json"]) == 1)
        #expect(try run(["jobs", "--json"]) == 0)
        #expect(try run(["tenant", "list", "--json"]) == 0)
        let logText = try String(contentsOfFile: log, encoding: .utf8)
        outputs.append(logText)

        for secret in [s3Secret, dsnPassword, masterKey] {
            for text in outputs { #expect(!text.contains(secret), "a secret leaked into: \(text)") }
        }

        // Every line is one JSON object; the backup's run is there with its job, tenant and run id.
        let lines = logText.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.allSatisfy { $0 != nil })
        let events = lines.compactMap { $0 }
        let backup = try #require(events.first { $0["job"] as? String == "docs-backup" })
        #expect(backup["tenant"] as? String == "acme")
        #expect(Int(backup["run"] as? String ?? "") != nil)
        #expect(backup["level"] as? String == "info")
        let failed = try #require(events.first { $0["job"] as? String == "pg-basebackup" })
        #expect(failed["level"] as? String == "error")
        #expect(events.contains { $0["message"] as? String == "command failed" })
    }

    @Test func anUnknownLogLevelIsAUsageError() throws {
        let f = try Fixture(corpus: Self.small)
        let r = try f.tresor.run(["jobs", "--log-level", "loud"])
        #expect(r.code == 2)
        #expect(r.stderr.contains("error: unknown log level 'loud'"), "\(r.stderr)")
    }
}
