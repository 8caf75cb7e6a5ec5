import Foundation
import Testing
import TresorTestSupport

/// The progress line of long work: on a terminal only, updating in place, ending cleanly.
@Suite struct ProgressLineTests {
    static let clear = "\r\u{1B}[K"

    /// Runs tresor under `script`, so its standard streams are a terminal; returns what the
    /// terminal received.
    func onTerminal(_ f: Fixture, _ args: [String]) throws -> String {
        let command = ([TresorProcess.binary, "--home", f.home] + args).map { "'\($0)'" }.joined(separator: " ")
        var env = ProcessInfo.processInfo.environment
        env["TRESOR_PROGRESS_INTERVAL_MS"] = "0"  // draw every update: the test needs several
        let (code, out) = try runCapturingOutput("/usr/bin/script", ["-q", "-e", "-c", command, "/dev/null"], environment: env)
        #expect(code == 0, "script exited \(code)")
        return out
    }

    @Test func aBackupOnATerminalUpdatesOneLineAndClearsItBeforeItsResult() throws {
        // Large files: the backup reports progress at chunk cuts (the first one at once, then at
        // most once a second), so at least one draw happens however fast the machine is.
        var o = CorpusBuilder.Options(); o.smallFiles = 20; o.largeFiles = 2
        let f = try Fixture(corpus: o)
        let text = try onTerminal(f, ["docs", "backup", "acme"])
        let draws = text.components(separatedBy: Self.clear)
        // Draws of the one line (each starting with \r and erase-line), with files, bytes and a rate.
        let lines = draws.dropFirst().dropLast().filter { $0.contains(" files, ") }
        #expect(lines.count >= 1, "\(text.debugDescription)")
        #expect(lines.allSatisfy { $0.contains("/s") && !$0.contains("\n") }, "\(text.debugDescription)")
        // Ends cleanly: the line is cleared, then the result starts at column 0.
        let last = try #require(draws.last)
        #expect(last.hasPrefix("snapshot "), "\(text.debugDescription)")

        let json = try onTerminal(f, ["docs", "backup", "acme", "--json"])
        #expect(!json.contains("\u{1B}[K"), "\(json.debugDescription)")
    }

    @Test func aReadDataCheckOnATerminalShowsPacksBytesAndETAThenClearsTheLine() throws {
        let f = try Fixture()
        try f.expectOK(["docs", "backup", "acme"])
        let packs = f.packs().count
        let text = try onTerminal(f, ["check", "acme", "--read-data"])
        let draws = text.components(separatedBy: Self.clear)
        let lines = draws.dropFirst().dropLast().filter { $0.contains(" packs, ") }
        // One draw per pack read (the interval is 0 here), each with bytes of the total and a rate.
        #expect(lines.count == packs, "\(packs) packs: \(text.debugDescription)")
        #expect(lines.allSatisfy { $0.contains(" of ") && $0.contains("/s") && !$0.contains("\n") }, "\(text.debugDescription)")
        #expect(lines.contains { $0.hasPrefix("\(packs) packs, ") }, "\(text.debugDescription)")
        let last = try #require(draws.last)
        #expect(last.hasPrefix("acme: "), "\(text.debugDescription)")

        let json = try onTerminal(f, ["check", "acme", "--read-data", "--json"])
        #expect(!json.contains("\u{1B}[K") && json.contains("\"tenants\""), "\(json.debugDescription)")
    }

    @Test func noProgressWhenStderrIsNoTerminal() throws {
        let f = try Fixture()
        let r = try f.expectOK(["docs", "backup", "acme"])
        #expect(!r.stderr.contains("\r"))
        #expect(r.stdout.hasPrefix("snapshot "))
    }
}
