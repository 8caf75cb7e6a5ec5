import Foundation
import Testing
import TresorTestSupport

/// `tresor evidence …` and the region approval's record, through the real binary.
@Suite(.serialized) struct EvidenceCommandTests {
    func sha256(_ text: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(String(decoding: out, as: UTF8.self).prefix(64))
    }

    @Test func regionApprovalIsSignedEvidenceThatVerifiesAndTamperingExitsThree() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 3; o.largeFiles = 0; return o
            }())
        try f.expectOK(["store", "add", "us", "--url", "file://" + f.dir.sub("us-store").path, "--region", "us-east"])
        let reason = "customer contract §4 allows a US copy"
        try f.expectOK(["region", "approve", "acme", "--store", "us", "--by", "alice", "--reason", reason])
        // The approval is in force, for the tenant it names only.
        try f.expectOK(["docs", "backup", "acme"])
        try f.expectOK(["replicate", "acme", "--to", "us"])
        #expect(try f.tresor.run(["tenant", "add", "gamma", "--region", "eu-central", "--store", "us"]).code == 2)

        let list = try f.expectOK(["--json", "evidence", "list", "--kind", "region-approval", "--tenant", "acme"])
        let entries = try #require(list.json()?["entries"] as? [[String: Any]])
        #expect(entries.count == 1)
        let payload = try #require(entries.first?["payload"] as? [String: Any])
        #expect(payload["approved_by"] as? String == "alice" && payload["store"] as? String == "us")
        #expect(payload["store_region"] as? String == "us-east" && payload["tenant_region"] as? String == "eu-central")
        #expect(payload["reason_sha256"] as? String == (try sha256(reason)))
        let logFile = f.home + "/evidence/log.jsonl"
        #expect(!(try String(contentsOfFile: logFile, encoding: .utf8)).contains("contract"), "free text stays out of the log")
        #expect(try f.expectOK(["--json", "evidence", "list", "--since", "2999-01-01"]).json()?["entries"] as? [Any] != nil)

        let ok = try f.expectOK(["--json", "evidence", "verify"])
        #expect(ok.json()?["verifiedRecords"] as? Int == 1 && ok.json()?["intact"] as? Bool == true)

        // The public key, printed both ways, verifies the log on its own (no home needed).
        let hex = try f.expectOK(["evidence", "export-key"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(hex == (try String(contentsOfFile: f.home + "/keys/evidence.pub", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines))
        let pem = try f.expectOK(["evidence", "export-key", "--pem"]).stdout
        #expect(pem.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        let pemFile = f.dir.sub("auditor.pem")
        try pem.write(to: pemFile, atomically: true, encoding: .utf8)
        let copy = f.dir.sub("copy.jsonl")
        try FileManager.default.copyItem(atPath: logFile, toPath: copy.path)
        let auditor = TresorProcess(home: f.dir.sub("no-home-here").path)
        #expect(try auditor.run(["evidence", "verify", "--log", copy.path, "--public-key", pemFile.path]).code == 0)

        // Another key: exit 3, naming line 1.
        let other = f.dir.sub("other.pub")
        try (String(repeating: "ab", count: 32) + "\n").write(to: other, atomically: true, encoding: .utf8)
        let wrongKey = try f.tresor.run(["--json", "evidence", "verify", "--public-key", other.path])
        #expect(wrongKey.code == 3 && (wrongKey.json()?["firstBad"] as? [String: Any])?["line"] as? Int == 1)

        // An edited record: exit 3, naming it.
        try f.expectOK(["region", "approve", "acme", "--store", "us", "--by", "bob", "--reason", "renewed"])
        let text = try String(contentsOfFile: logFile, encoding: .utf8)
        try text.replacingOccurrences(of: "\"approved_by\":\"bob\"", with: "\"approved_by\":\"eve\"")
            .write(toFile: logFile, atomically: true, encoding: .utf8)
        let edited = try f.tresor.run(["evidence", "verify"])
        #expect(edited.code == 3 && edited.stdout.contains("BAD: line 2 (record 2)"), "\(edited.stdout)")
        let listed = try f.tresor.run(["evidence", "list"])
        #expect(listed.code == 0, "list reads, it does not verify: \(listed.stderr)")
    }

    @Test func rotationKeepsTheAnchorKeyValidAndBadUsageExitsTwo() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 3; o.largeFiles = 0; return o
            }())
        try f.expectOK(["store", "add", "us", "--url", "file://" + f.dir.sub("us-store").path, "--region", "us-east"])
        try f.expectOK(["region", "approve", "acme", "--store", "us", "--by", "alice", "--reason", "one"])
        let before = try f.expectOK(["evidence", "export-key", "--current"]).stdout
        let keyFile = f.home + "/keys/evidence.key"
        let oldKey = try String(contentsOfFile: keyFile, encoding: .utf8)
        try f.expectOK(["--json", "evidence", "rotate-key"])
        // Put the files back the way a crash between the rotation record and the key file's
        // rename leaves them: the next append finishes the rotation instead of failing.
        try FileManager.default.moveItem(atPath: keyFile, toPath: keyFile + ".next")
        try oldKey.write(toFile: keyFile, atomically: true, encoding: .utf8)
        try f.expectOK(["region", "approve", "acme", "--store", "us", "--by", "alice", "--reason", "two"])
        #expect(!FileManager.default.fileExists(atPath: keyFile + ".next"))
        let after = try f.expectOK(["evidence", "export-key", "--current"]).stdout
        #expect(before != after)
        #expect(try f.expectOK(["evidence", "export-key"]).stdout == before, "the anchor stays the first key")
        let v = try f.expectOK(["--json", "evidence", "verify"])
        #expect(v.json()?["verifiedRecords"] as? Int == 3 && (v.json()?["keys"] as? [String])?.count == 2)

        // Replication to the offsite store: once, then nothing new.
        let rep = try f.expectOK(["--json", "evidence", "replicate", "--to", "us"])
        #expect(rep.json()?["copied"] as? Int == 3)
        #expect(try f.expectOK(["--json", "evidence", "replicate", "--to", "us"]).json()?["copied"] as? Int == 0)
        let prefix = try #require(rep.json()?["prefix"] as? String)
        let copied = try String(contentsOfFile: f.dir.sub("us-store").path + "/" + prefix + "000000000003.json", encoding: .utf8)
        #expect(try String(contentsOfFile: f.home + "/evidence/log.jsonl", encoding: .utf8).hasSuffix(copied))

        for args in [
            ["evidence", "verify", "--log", f.dir.sub("nothing.jsonl").path],
            ["evidence", "list", "--kind", "picnic"],
            ["evidence", "list", "--since", "someday"],
            ["--home", f.dir.sub("typo").path, "evidence", "verify", "--public-key", f.home + "/keys/evidence.pub"],
            ["evidence", "verify", "--public-key", f.dir.sub("nothing.pub").path],
        ] {
            let r = try f.tresor.run(args)
            #expect(r.code == 2 && r.stderr.hasPrefix("error: "), "\(args): \(r.code) \(r.stderr)")
        }
    }

    @Test func anApprovalWhoseEvidenceCannotBeSignedIsNotRecorded() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 3; o.largeFiles = 0; return o
            }())
        try f.expectOK(["store", "add", "us", "--url", "file://" + f.dir.sub("us-store").path, "--region", "us-east"])
        // A signing key that does not belong to the anchor public key auditors were given.
        try (String(repeating: "12", count: 32) + "\n").write(toFile: f.home + "/keys/evidence.key", atomically: true, encoding: .utf8)
        let r = try f.tresor.run(["region", "approve", "acme", "--store", "us", "--by", "alice", "--reason", "x"])
        #expect(r.code == 2 && r.stderr.contains("does not match the anchor public key"), "\(r.stderr)")
        try f.expectOK(["docs", "backup", "acme"])
        #expect(try f.tresor.run(["replicate", "acme", "--to", "us"]).code == 2, "no approval without its evidence")
        #expect(!FileManager.default.fileExists(atPath: f.home + "/evidence/log.jsonl"))
    }

    @Test func evidenceIsReplicatedToARealS3StoreWithoutOverwriting() throws {
        let server = try SeaweedServer.shared()
        let f = try S3Fixture(
            server: server,
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 3; o.largeFiles = 0; return o
            }())
        try f.expectOK(["store", "add", "local", "--url", "file://" + f.dir.sub("local").path, "--region", "eu-central"])
        try f.expectOK(["region", "approve", "acme", "--store", "local", "--by", "alice", "--reason", "x"])
        try f.expectOK(["region", "approve", "acme", "--store", "local", "--by", "bob", "--reason", "y"])
        let r = try f.expectOK(["--json", "evidence", "replicate", "--to", "s3"])
        let prefix = try #require(r.json()?["prefix"] as? String)
        #expect(r.json()?["copied"] as? Int == 2)
        let s3 = try f.store()
        let lines = try String(contentsOfFile: f.home + "/evidence/log.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(try s3.get(prefix + "000000000002.json") == Array((lines[1] + "\n").utf8))

        // A changed offsite copy is reported (exit 3) and left as it is.
        try s3.put(prefix + "000000000001.json", Array("changed\n".utf8))
        let again = try f.tresor.run(["--json", "evidence", "replicate", "--to", "s3"])
        #expect(again.code == 3 && (again.json()?["conflicts"] as? [Int]) == [1], "\(again.stdout)")
        #expect(try s3.get(prefix + "000000000001.json") == Array("changed\n".utf8))
    }
}
