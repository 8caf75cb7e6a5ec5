import Foundation
import Testing
import TresorCatalog
import TresorCore
import TresorPostgres

@testable import TresorCLI

/// An error raised because of another used to print only its own line, so the reason underneath
/// (a store or a database refusing, a damaged record) was lost; now every cause is printed and carried.
@Suite struct ErrorChainTests {
    static let chained = PostgresError(
        .failed, "the cluster record of tenant 'acme' cannot be read",
        hint: "tresor pg setup acme",
        cause: CatalogError(
            .sqlite, "catalog.db: database is locked",
            cause: CoreError.failed("another tresor holds the catalog for more than 30 s")))

    @Test func everyCauseIsPrintedUnderTheErrorAndBeforeTheHint() {
        let view = ErrorView(Self.chained)
        #expect(
            view.text == """
                error: the cluster record of tenant 'acme' cannot be read
                  caused by: catalog.db: database is locked
                  caused by: another tresor holds the catalog for more than 30 s
                hint: tresor pg setup acme

                """)
        #expect(view.exitCode == 1)
    }

    @Test func jsonErrorsCarryTheCauses() throws {
        let data = try JSONEncoder().encode(ErrorView(Self.chained))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["error"] as? String == "the cluster record of tenant 'acme' cannot be read")
        #expect(
            object["caused_by"] as? [String] == [
                "catalog.db: database is locked",
                "another tresor holds the catalog for more than 30 s",
            ])
        #expect(object["exit_code"] as? Int == 1)
    }

    @Test func anErrorWithoutACausePrintsOneLineAndNoCauseField() throws {
        let view = ErrorView(CoreError.usage("unknown tenant 'x'", hint: "tresor tenant list"))
        #expect(view.text == "error: unknown tenant 'x'\nhint: tresor tenant list\n")
        let data = try JSONEncoder().encode(view)
        #expect(!String(decoding: data, as: UTF8.self).contains("caused_by"))
    }

    @Test func aForeignErrorUnderneathIsPrintedAsItDescribesItself() {
        struct Refused: Error, CustomStringConvertible { var description: String { "connection refused" } }
        let view = ErrorView(CoreError.failed("cannot reach the catalog", cause: Refused()))
        #expect(view.causedBy == ["connection refused"])
    }
}
