import Foundation
import Testing
import TresorTestSupport

/// A tenant argument that is no valid `TenantID` used to travel into the jobs as a string and
/// come back as "unknown tenant" (or, for names the catalog never saw, reach the store layout);
/// now the command line refuses it before anything is opened: exit 2, one `error:` line naming
/// the rules, one `hint:` line.
@Suite(.serialized) struct TenantArgumentTests {
    @Test func aBadTenantNameIsRefusedAtTheCommandLineWithTheRules() throws {
        let f = try Fixture(corpus: { var o = CorpusBuilder.Options(); o.smallFiles = 2; o.largeFiles = 0; return o }())
        let commands: [[String]] = [
            ["docs", "backup", "Acme"],
            ["docs", "restore", "../x", "--to", f.dir.sub("out").path],
            ["docs", "ls", "a b"],
            ["snapshots", "acme.x"],
            ["pg", "basebackup", "ACME"],
            ["pg", "window", "acme/x"],
            ["pg", "wal-push", "Acme", "/nowhere"],
        ]
        for args in commands {
            let r = try f.tresor.run(args)
            #expect(r.code == 2, "\(args): exit \(r.code) \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 2, "\(args): \(r.stderr)")
            #expect(lines.first?.hasPrefix("error: ") == true, "\(args): \(r.stderr)")
            #expect(lines.first?.contains("invalid tenant name") == true, "\(args): \(r.stderr)")
            #expect(lines.last?.hasPrefix("hint: ") == true, "\(args): \(r.stderr)")
        }
    }
}
