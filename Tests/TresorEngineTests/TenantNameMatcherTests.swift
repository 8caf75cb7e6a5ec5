import Foundation
import Testing
import TresorCore
import TresorEngine

@Suite("Tenant names and the deletion rule")
struct TenantNameMatcherTests {
    let m = TenantNameMatcher(targets: ["acme"], live: ["acme2", "acme-eu"])

    @Test func aSimilarlyNamedLiveTenantWouldBeReportedAsResidue() {
        #expect(m.match("acme2") == nil)
        #expect(m.match("bacme") == nil)
        #expect(m.match("acme-eu") == nil)
        #expect(m.match("acme-eu.sql") == nil)
        #expect(m.match("ACME2-dump") == nil)
    }

    @Test func residueNamedAfterTheTenantWouldBeMissed() {
        #expect(m.match("acme") == "acme")
        #expect(m.match("acme.sql.gz") == "acme")
        #expect(m.match("backup_acme_old") == "acme")
        #expect(m.match("tresor_acme") == "acme")
        #expect(m.match("Old ACME copy") == "acme")
        #expect(m.match("acme-eu and acme") == "acme")
    }

    @Test func deletionOneSecondBeforeTheDeadlineOrUnderAHoldWouldBreakTheTerms() {
        let end = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01
        let delay = PolicyDuration(seconds: 90 * 86400)
        let deadline = end.addingTimeInterval(90 * 86400)
        #expect(DeletionRule.state(contractEnd: end, hold: nil, delay: delay, now: deadline.addingTimeInterval(-1)) == .notDue)
        #expect(DeletionRule.state(contractEnd: end, hold: nil, delay: delay, now: deadline) == .due)
        #expect(DeletionRule.state(contractEnd: end, hold: "court", delay: delay, now: deadline.addingTimeInterval(86400)) == .held)
        #expect(DeletionRule.state(contractEnd: nil, hold: nil, delay: delay, now: deadline) == .running)
    }
}
