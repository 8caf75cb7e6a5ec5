import Foundation
import Testing
@testable import TresorEngine

/// The drill proves a time target from PostgreSQL's own log lines; their times carry
/// microseconds, and cutting them to milliseconds would read a commit just after the target as
/// one at it.
@Suite struct DrillLogTimeTests {
    @Test func aCommitMicrosecondsAfterATimeTargetIsReadAsAfterIt() throws {
        let log = """
            2026-11-30 14:28:43.100 UTC [1] LOG:  recovery stopping before commit of transaction 1234, time 2026-11-30 14:27:50.500300+00
            2026-11-30 14:28:43.101 UTC [1] LOG:  last completed transaction was at log time 2026-11-30 14:27:50.499871+00
            """
        let target = try #require(ISO8601DateFormatter().date(from: "2026-11-30T14:27:50Z")).addingTimeInterval(0.5)
        let next = try #require(DrillRun.logTime(log, after: "recovery stopping before commit of transaction "))
        let last = try #require(DrillRun.logTime(log, after: "last completed transaction was at log time "))
        #expect(next > target && next.timeIntervalSince(target) < 0.0004)
        #expect(last <= target && target.timeIntervalSince(last) > 0.0001)
        // A server running in another zone: the offset is honoured.
        let east = try #require(DrillRun.logTime("x last completed transaction was at log time 2026-11-30 15:27:50.5+01", after: "log time "))
        #expect(abs(east.timeIntervalSince(target)) < 0.000001)
    }
}
