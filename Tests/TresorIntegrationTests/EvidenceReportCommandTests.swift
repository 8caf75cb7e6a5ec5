import Foundation
import Testing
import TresorTestSupport

/// `tresor evidence report` through the real binary, opened in a real browser (Debian's headless
/// Chromium): the page parses, shows a pass, a failure and an overdue tenant, runs no script,
/// and its screenshot is written (to `TRESOR_REPORT_SCREENSHOT` when set, for people to look at).
@Suite(.serialized) struct EvidenceReportCommandTests {
    static let chromium = "/usr/bin/chromium"

    func browser(_ args: [String]) throws -> (code: Int32, stdout: String) {
        #expect(FileManager.default.isExecutableFile(atPath: Self.chromium), "chromium is missing: run scripts/install-deps.sh")
        let profile = TempDirectory("tresor-chromium")
        let r = try runCapturingOutput(
            Self.chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--user-data-dir=\(profile.path)", "--hide-scrollbars",
            ] + args)
        return (r.code, r.out)
    }

    @Test func theMonthsReportShowsAPassAFailureAndAnOverdueTenantInABrowser() throws {
        var o = CorpusBuilder.Options()
        o.smallFiles = 2
        o.largeFiles = 0
        let f = try Fixture(corpus: o)
        for t in ["beta", "gamma"] {
            try f.expectOK(["tenant", "add", t, "--region", "eu-central", "--store", "local", "--docs", f.docs.path])
        }
        // A year of monthly drills for acme, with its RTO drifting; beta fails in November; gamma
        // last passed in September.
        for (i, m) in [
            "2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08",
            "2026-09", "2026-10", "2026-11",
        ].enumerated() {
            try recordDrill(
                home: f.home, tenant: "acme", at: "\(m)-0\(i % 9 + 1)T02:00:00Z", rtoMs: Int64(360_000 + (i * 37 % 11) * 60_000),
                target: i == 11 ? .latest : .random, rpoMs: i == 11 ? 2_400 : nil)
        }
        for m in ["2026-08", "2026-09", "2026-10", "2026-11"] {
            try recordDrill(home: f.home, tenant: "beta", at: "\(m)-03T02:00:00Z", rtoMs: 780_000)
        }
        try recordDrill(home: f.home, tenant: "beta", at: "2026-11-14T02:00:00Z", failing: "amcheck", rtoMs: 1_140_000)
        try recordDrill(home: f.home, tenant: "gamma", at: "2026-09-03T02:00:00Z", rtoMs: 2_880_000)
        try recordDrill(home: f.home, tenant: "gamma", at: "2026-11-18T02:00:00Z", failing: "read_tables", rtoMs: 4_020_000)
        try f.expectOK(["--now", "2026-11-20T06:00:00Z", "drill", "status", "--max-age", "90d"])

        let page = f.dir.sub("report.html")
        let r = try f.tresor.run(["--json", "--now", "2026-11-30T12:00:00Z", "evidence", "report", "--out", page.path, "--month", "2026-11"])
        #expect(r.code == 3, "gamma is overdue: \(r.stdout) \(r.stderr)")
        #expect(
            r.json()?["overdue"] as? [String] == ["gamma"] && r.json()?["failedDrills"] as? Int == 2
                && r.json()?["chainIntact"] as? Bool == true)
        #expect(try f.tresor.run(["evidence", "report", "--out", page.path, "--month", "2026-13"]).code == 2)

        // The browser's DOM after parsing: the rows and their highlights are there, no script is.
        let dom = try browser(["--dump-dom", page.absoluteString])
        #expect(dom.code == 0)
        #expect(dom.stdout.contains(#"<tr class="late"><td class="tenant">gamma</td><td><span class="pill fail">Overdue</span>"#), "\(dom.stdout.prefix(400))")
        #expect(dom.stdout.contains(#"<td class="tenant">beta</td><td><span class="pill pass">OK</span>"#))
        #expect(dom.stdout.contains(#"<span class="cell fail" title="November 2026: 0 passed, 1 failed">✗</span>"#), "gamma")
        #expect(dom.stdout.contains(#"<span class="cell mixed" title="November 2026: 1 passed, 1 failed">✓ ✗</span>"#), "beta")
        #expect(dom.stdout.contains(#"<span class="cell pass" title="November 2026: 1 passed, 0 failed">✓</span>"#))
        #expect(dom.stdout.contains("<b>amcheck</b> failed: pg_amcheck reported 1 corrupt index page"))
        #expect(dom.stdout.contains("Evidence chain verified."))
        #expect(!dom.stdout.contains("<script"))

        let shot =
            ProcessInfo.processInfo.environment["TRESOR_REPORT_SCREENSHOT"].map { URL(fileURLWithPath: $0) }
            ?? f.dir.sub("report.png")
        let png = try browser(["--screenshot=\(shot.path)", "--window-size=1280,1900", page.absoluteString])
        #expect(png.code == 0)
        let bytes = try Data(contentsOf: shot)
        #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) && bytes.count > 20_000)
    }
}
