import ArgumentParser
import Foundation
import Testing
import TresorCatalog
import TresorCore
import TresorPostgres

@testable import TresorCLI

/// The exit-code table of DESIGN.md, one row per code.
@Suite struct ExitCodeTests {
    @Test(arguments: [
        (Outcome.ok, Int32(0)),
        (Outcome.problemFound, Int32(3)),
    ])
    func outcomes(outcome: Outcome, code: Int32) {
        #expect(ExitCodes.code(for: outcome) == code)
    }

    @Test func errors() {
        #expect(ExitCodes.code(for: CoreError.failed("store unreachable")) == 1)
        #expect(ExitCodes.code(for: CoreError.usage("unknown tenant 'x'")) == 2)
        #expect(ExitCodes.code(for: CoreError(.locked, "held")) == 4)
        #expect(ExitCodes.code(for: ValidationError("bad")) == 2)
        struct Other: Error {}
        #expect(ExitCodes.code(for: Other()) == 1)
    }

    @Test func argumentParserUsageErrorsBecomeTwoNotSixtyFour() {
        #expect(TresorCLI.run(arguments: ["no-such-command"], environment: [:]) == 2)
        #expect(TresorCLI.run(arguments: ["docs", "backup"], environment: [:]) == 2)
        #expect(TresorCLI.run(arguments: ["--help"], environment: [:]) == 0)
    }

    @Test func globalOptionsAreFoundAnywhereAndValuesStayWithTheirOptions() throws {
        let (g, rest) = try GlobalOptions.extract(from: ["--home", "/h", "region", "approve", "t", "--reason", "--json", "--now=2026-01-01", "--json"])
        #expect(g.home == "/h")
        #expect(g.json)
        #expect(g.now == "2026-01-01")
        #expect(rest == ["region", "approve", "t", "--reason", "--json"])
        #expect(throws: CoreError.self) { try GlobalOptions.extract(from: ["--home"]) }
    }

    @Test func tenantViewsNeverShowADSNPassword() {
        let t = TenantRecord(
            name: "acme", region: "eu", store: "s", pgDSN: "host=db user=u password=s3cret dbname=x",
            createdAt: Date(timeIntervalSince1970: 0))
        #expect(TenantView(t).pg?.contains("s3cret") == false)
    }
}

@Suite struct RedactionTests {
    @Test func dsnPasswordsAreRedacted() {
        // libpq parses the string (PQconninfoParse); the redacted form lists its options in libpq's order.
        #expect(redactDSN("host=db user=u password=s3cret dbname=x") == "user=u password=*** dbname=x host=db")
        #expect(redactDSN("host=db password='a b c' dbname=x") == "password=*** dbname=x host=db")
        #expect(redactDSN("postgres://u:s3cret@db/x") == "user=u password=*** dbname=x host=db")
    }
}
