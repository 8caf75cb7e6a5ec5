import Foundation
import Testing
import TresorTestSupport

/// A tenant argument that is no valid `TenantID` used to travel into the jobs as a string and
/// come back as "unknown tenant" (or, for names the catalog never saw, reach the store layout);
/// now the command line refuses it before anything is opened: exit 2, one `error:` line naming
/// the rules, one `hint:` line.
@Suite(.serialized) struct TenantArgumentTests {
    @Test func aBadTenantNameIsRefusedAtTheCommandLineWithTheRules() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 2; o.largeFiles = 0; return o
            }())
        try expectRefused(
            f,
            [
                ["docs", "backup", "Acme"],
                ["docs", "restore", "../x", "--to", f.dir.sub("out").path],
                ["docs", "ls", "a b"],
                ["snapshots", "acme.x"],
                ["pg", "basebackup", "ACME"],
                ["pg", "window", "acme/x"],
                ["pg", "wal-push", "Acme", "/nowhere"],
            ])
    }

    /// Drills, exports, retention, repair, contracts, evidence and job listings used to take the
    /// name as a string and answer "unknown tenant" (or nothing at all for a filter) after opening
    /// the home; a valid name next to a bad one in a list must not let the bad one through.
    @Test func aBadTenantNameIsRefusedByEveryJobCommandWithTheRules() throws {
        let f = try Fixture(
            corpus: {
                var o = CorpusBuilder.Options(); o.smallFiles = 2; o.largeFiles = 0; return o
            }())
        try expectRefused(
            f,
            [
                ["drill", "run", "Acme"],
                ["drill", "self-test", "acme.x"],
                ["export", "Acme", "--out", f.dir.sub("bag.tar").path],
                ["export", "link", "acme/x", "bag.tar"],
                ["retention", "plan", "Acme"],
                ["retention", "apply", "acme", "Acme", "--dry-run"],
                ["repair", "index", "../acme"],
                ["repair", "snapshots", "ACME"],
                ["tenant", "end-contract", "Acme", "--date", "2026-11-27"],
                ["tenant", "hold", "a b", "--reason", "court order", "--by", "legal"],
                ["tenant", "release", "Acme"],
                ["evidence", "list", "--tenant", "Acme"],
                ["jobs", "--tenant", "acme.x"],
            ])
    }

    private func expectRefused(_ f: Fixture, _ commands: [[String]]) throws {
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
