import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorTestSupport

@testable import TresorEvidence

/// The HTML report, rendered from a real signed log.
@Suite struct EvidenceReportTests {
    static let hostile = "<script>alert(1)</script>"
    let dir = TempDirectory("tresor-report")
    let key = Ed25519PrivateKey()
    var url: URL { dir.sub("log.jsonl") }
    let promises = EvidenceReport.Promises(
        rto: PolicyDuration("1h")!, rtoTypical: PolicyDuration("15m")!,
        rtoTypicalSharePercent: 75, rpo: PolicyDuration("1m")!, maxAge: PolicyDuration("30d")!)

    func append(_ tenant: String, at time: String, _ drill: DrillRecord) throws {
        try EvidenceLog(url: url, signer: key, clock: FixedClock(TimeFormat.parse(time)!))
            .append(kind: .drill, tenant: tenant, payload: drill.payload())
    }

    /// November 2026: acme passes in 8 minutes; beta fails (amcheck) in 20 minutes; gamma last
    /// passed in September (overdue on Nov 30); a tenant the catalog no longer lists, with a
    /// hostile name, has a passing drill; a failed check's reason carries markup.
    func november() throws -> EvidenceReport {
        try append("gamma", at: "2026-09-20T03:00:00Z", sampleDrill(rtoMs: 600_000))
        try append("acme", at: "2026-10-10T03:00:00Z", sampleDrill(rtoMs: 540_000))
        try append("acme", at: "2026-11-10T03:00:00Z", sampleDrill(rtoMs: 480_000, target: .latest, rpoMs: 2_000))
        try append(
            "beta", at: "2026-11-12T03:00:00Z",
            sampleDrill([.passed("connect"), .failed("amcheck", reason: "btree <b>\"idx\"</b> & corrupt")], rtoMs: 1_200_000))
        try append(Self.hostile, at: "2026-11-13T03:00:00Z", sampleDrill(rtoMs: 300_000))
        return try report(now: "2026-11-30T12:00:00Z")
    }

    func report(now: String, month: EvidenceReport.Month = EvidenceReport.Month(year: 2026, month: 11)) throws -> EvidenceReport {
        var history = DrillHistory()
        let v = try EvidenceVerifier.verify(log: url, trustedKey: key.publicKey) { r, _ in history.add(r) }
        return EvidenceReport(
            month: month, now: TimeFormat.parse(now)!, activeTenants: ["acme", "beta", "gamma"],
            verification: v, history: history, promises: promises)
    }

    @Test func everyValueIsEscapedSoAHostileTenantNameIsTextNotMarkup() throws {
        let html = try EvidenceReportPage.render(try november())
        #expect(!html.contains("<script"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("btree &lt;b&gt;&quot;idx&quot;&lt;/b&gt; &amp; corrupt"))
        #expect(!html.contains("<b>\"idx\""))
        // The template itself never asks for unescaped output.
        #expect(!EvidenceReportTemplate.text.contains("{{{") && !EvidenceReportTemplate.text.contains("{{&"))
    }

    @Test func thePageNeedsNoNetwork() throws {
        let html = try EvidenceReportPage.render(try november())
        for needle in ["http://", "https://", "<link", "src=", "@import", "url(", "<script", "<iframe"] {
            #expect(!html.contains(needle), "\(needle)")
        }
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.contains("<style>"))
    }

    @Test func overdueTenantsAndFailuresAreHighlightedAndFiguresMatchTheDrills() throws {
        let r = try november()
        #expect(r.statuses.map(\.state) == [.ok, .neverPassed, .overdue])
        #expect(r.outcome == .problemFound)
        let html = try EvidenceReportPage.render(r)
        #expect(
            html.contains(#"<tr class="late"><td class="tenant">gamma</td><td><span class="pill fail">Overdue</span></td><td>2026-09-20</td><td>71 d</td>"#))
        #expect(html.contains(#"<tr class="late"><td class="tenant">beta</td><td><span class="pill fail">Never passed</span>"#))
        #expect(html.contains(#"<tr class=""><td class="tenant">acme</td><td><span class="pill pass">OK</span></td><td>2026-11-10</td>"#))
        #expect(html.contains(#"<tr class="former"><td class="tenant">&lt;script&gt;"#))
        // beta's November cell is a failure, acme's October and November cells are passes.
        #expect(html.contains(#"<span class="cell fail" title="November 2026: 0 passed, 1 failed">✗</span>"#))
        #expect(html.contains(#"<span class="cell pass" title="October 2026: 1 passed, 0 failed">✓</span>"#))
        #expect(html.contains("<b>amcheck</b> failed: btree"))
        // Three November drills: 8 min, 20 min, 5 min: 2 of 3 within 15 minutes, below the promise.
        #expect(html.contains(#"<div class="value">20 min 00 s</div>"#))
        #expect(html.contains(#"<div class="value">67 %</div><div class="detail">2 of 3; promised over 75 %</div>"#))
        #expect(html.contains(#"<div class="value">2.0 s</div>"#), "RPO of the drill to the latest point")
        #expect(
            html.contains("ISO/IEC 27001:2022 A.8.13 Information backup") && html.contains("SOC 2 A1.2")
                && html.contains("Service terms: 30-day control") && html.contains("Service terms: monthly restore test"))
        #expect(html.contains("<svg class=\"spark\""))
    }

    @Test func aReportOfALogThatDoesNotVerifySaysSoAndUsesOnlyTheRecordsBeforeTheBadOne() throws {
        _ = try november()
        var lines = try Data(contentsOf: url).split(separator: 10).map { String(decoding: $0, as: UTF8.self) }
        lines[2] = lines[2].replacingOccurrences(of: "\"rto_ms\":480000", with: "\"rto_ms\":48000")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        let r = try report(now: "2026-11-30T12:00:00Z")
        #expect(r.verification.intact == false && r.history.entries.count == 2)
        #expect(r.outcome == .problemFound)
        let html = try EvidenceReportPage.render(r)
        #expect(html.contains("Evidence chain does not verify.") && html.contains("Record at line 3 (seq 3) fails verification"))
        #expect(!html.contains("Evidence chain verified."))
    }

    @Test func theFingerprintShownIsTheVerifyingKeys() throws {
        let html = try EvidenceReportPage.render(try november())
        let expected = try shell("printf %s '\(Hex.encode(key.publicKey.rawRepresentation))' | xxd -r -p | sha256sum | cut -c1-64")
        #expect(expected.count == 64 && html.contains(expected))
    }

    func shell(_ command: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
