import Foundation
import Testing
import TresorPostgres

/// Golden files: `Fixtures/retention/NAME.input.json` → `NAME.plan.json`. The plans were
/// written once with `TRESOR_UPDATE_GOLDEN=1` and then checked by hand against the rules (see
/// each case's comment); a change in the planner that changes a plan fails here.
@Suite struct RetentionPlanTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/retention")

    func golden(_ name: String) throws -> RetentionPlan {
        let input = try JSONDecoder().decode(RetentionInput.self,
                                             from: Data(contentsOf: Self.fixtures.appendingPathComponent(name + ".input.json")))
        let plan = try RetentionPlanner.plan(input)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let actual = try encoder.encode(plan)
        let url = Self.fixtures.appendingPathComponent(name + ".plan.json")
        if ProcessInfo.processInfo.environment["TRESOR_UPDATE_GOLDEN"] == "1" {
            try actual.write(to: url)
        }
        let expected = try Data(contentsOf: url)
        #expect(String(decoding: actual, as: UTF8.self) == String(decoding: expected, as: UTF8.self), "plan for \(name) differs from its golden file")
        return plan
    }

    /// The window starts at 2026-10-31T12:00Z, inside base backup b2 (11:00–13:00): b2 cannot
    /// restore that moment, so b1 (the newest that ended before it) and its WAL from segment 4 stay.
    @Test func windowStartingInsideABaseBackupKeepsTheOneBefore() throws {
        let plan = try golden("window-starts-inside-base-backup")
        #expect(plan.keepSnapshots.map(\.item) == ["b1", "b2", "b3"])
        #expect(plan.dropSnapshots.map(\.item) == ["b0"])
        #expect(plan.dropWAL.map(\.item) == ["000000010000000000000001", "000000010000000000000002",
                                             "000000010000000000000002.00000028.backup", "000000010000000000000003",
                                             "000000010000000000000009.streaming"])
        #expect(plan.keepWAL.contains { $0.item == "00000001000000000000000A.streaming" })
        #expect(plan.problems.isEmpty)
    }

    @Test func walGapIsReportedAndNothingIsDroppedToHideIt() throws {
        let plan = try golden("wal-gap")
        #expect(plan.problems == ["WAL gap on timeline 1: 000000010000000000000007…000000010000000000000007 missing"])
        #expect(plan.keepSnapshots.map(\.item) == ["b1", "b2", "b3"])
    }

    @Test func timelineSwitchKeepsBothTimelinesAndTheHistoryFile() throws {
        let plan = try golden("timeline-switch")
        #expect(plan.keepWAL.map(\.item).contains("00000002.history"))
        #expect(plan.keepWAL.map(\.item).contains("000000010000000000000006.partial"))
        #expect(plan.keepWAL.map(\.item).contains("000000020000000000000006"))
        #expect(plan.dropWAL.map(\.item) == ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"])
        #expect(plan.problems.isEmpty)
    }

    @Test func oldTimelineGoesOnceTheWindowStartsAfterTheSwitch() throws {
        let plan = try golden("timeline-switch-old-timeline-dropped")
        #expect(plan.keepSnapshots.map(\.item) == ["b2", "b3"])
        #expect(plan.keepWAL.map(\.item) == ["00000002.history", "000000020000000000000007", "000000020000000000000008",
                                             "000000020000000000000009"])
        #expect(plan.dropWAL.count == 7)
    }

    /// 33 UTC days carry snapshots (2028-02-25 … 03-31 without 03-10…12); the newest 31 stay,
    /// the last of each: 02-29 23:59:59.5 over 23:30 (written 00:30+01:00) and 02:00.
    @Test func dailySnapshotsAcrossLeapDayAndMonthEnds() throws {
        let plan = try golden("documents-month-ends-leap-day")
        let kept = Set(plan.keepSnapshots.map(\.item))
        #expect(kept.count == 31 + 1 + 1) // 31 days, the one in use, the one dated after now
        #expect(kept.contains("d-2028-02-29-late") && !kept.contains("d-2028-02-29") && !kept.contains("d-2028-03-01-plus1"))
        #expect(kept.contains("d-2028-02-28-late") && kept.contains("d-2028-02-27") && !kept.contains("d-2028-02-26"))
        #expect(kept.contains("d-2028-02-25")) // in use
        #expect(kept.contains("d-2028-03-31-late") && !kept.contains("d-2028-03-31") && kept.contains("d-2028-03-31-future"))
        #expect(plan.dropSnapshots.map(\.item).sorted() == ["d-2028-02-26", "d-2028-02-28", "d-2028-02-29",
                                                             "d-2028-03-01-plus1", "d-2028-03-31"])
    }
}
