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
        let input = try JSONDecoder().decode(
            RetentionInput.self,
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
        #expect(
            plan.dropWAL.map(\.item) == [
                "000000010000000000000001", "000000010000000000000002",
                "000000010000000000000002.00000028.backup", "000000010000000000000003",
                "000000010000000000000009.streaming",
            ])
        #expect(plan.keepWAL.contains { $0.item == "00000001000000000000000A.streaming" })
        #expect(plan.problems.isEmpty)
    }

    /// The same history while a drill or an export restores b0 (pinned): b0 stays, and so does
    /// the WAL from its start (segment 2), which the restore's recovery replays.
    @Test func aBaseBackupBeingRestoredKeepsItsWALToo() throws {
        let plan = try golden("base-backup-in-use")
        #expect(plan.keepSnapshots.map(\.item).sorted() == ["b0", "b1", "b2", "b3"])
        #expect(plan.dropSnapshots.isEmpty)
        #expect(plan.dropWAL.map(\.item) == ["000000010000000000000001", "000000010000000000000009.streaming"])
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
        #expect(
            plan.keepWAL.map(\.item) == [
                "00000002.history", "000000020000000000000007", "000000020000000000000008",
                "000000020000000000000009",
            ])
        #expect(plan.dropWAL.count == 7)
    }

    /// 33 UTC days carry snapshots (2028-02-25 … 03-31 without 03-10…12); the newest 31 stay,
    /// the last of each: 02-29 23:59:59.5 over 23:30 (written 00:30+01:00) and 02:00.
    @Test func dailySnapshotsAcrossLeapDayAndMonthEnds() throws {
        let plan = try golden("documents-month-ends-leap-day")
        let kept = Set(plan.keepSnapshots.map(\.item))
        #expect(kept.count == 31 + 1 + 1)  // 31 days, the one in use, the one dated after now
        #expect(kept.contains("d-2028-02-29-late") && !kept.contains("d-2028-02-29") && !kept.contains("d-2028-03-01-plus1"))
        #expect(kept.contains("d-2028-02-28-late") && kept.contains("d-2028-02-27") && !kept.contains("d-2028-02-26"))
        #expect(kept.contains("d-2028-02-25"))  // in use
        #expect(kept.contains("d-2028-03-31-late") && !kept.contains("d-2028-03-31") && kept.contains("d-2028-03-31-future"))
        #expect(
            plan.dropSnapshots.map(\.item).sorted() == [
                "d-2028-02-26", "d-2028-02-28", "d-2028-02-29",
                "d-2028-03-01-plus1", "d-2028-03-31",
            ])
    }

    /// The same input planned in UTC, to show what the zone changes.
    func inUTC(_ name: String) throws -> RetentionPlan {
        var input = try JSONDecoder().decode(
            RetentionInput.self,
            from: Data(contentsOf: Self.fixtures.appendingPathComponent(name + ".input.json")))
        input.timeZone = nil
        return try RetentionPlanner.plan(input)
    }

    /// Europe/Berlin springs forward on 2027-03-28 (02:00 CET → 03:00 CEST, a 23-hour day). Days
    /// are local dates: 23:30Z on 03-26 is 00:30 on 03-27 there, 22:30Z on 03-28 is already 03-29,
    /// 22:30Z on the month's last day is April 1st. Six days kept: the last snapshot of each
    /// local day stays. The 30-day window starts 30 × 24 h back (10:00Z on 03-02), earlier than
    /// the same local time 30 days back (12:00 CET = 11:00Z).
    @Test func springForwardDayInABerlinPolicyEndsAtLocalMidnight() throws {
        let plan = try golden("documents-berlin-spring-forward")
        #expect(
            plan.keepSnapshots.map(\.item) == [
                "s-0327-1200Z", "s-0328-2130Z", "s-0328-2230Z", "s-0330-1200Z",
                "s-0331-2130Z", "s-0401-0900Z",
            ])
        #expect(plan.dropSnapshots.map(\.item) == ["s-0326-2330Z", "s-0327-2330Z", "s-0328-0130Z", "s-0331-2230Z"])
        #expect(plan.windowStart == "2027-03-02T10:00:00Z")
        #expect(plan.timeZone == "Europe/Berlin")
        // UTC days would keep other snapshots (the old planner's answer).
        #expect(
            try inUTC("documents-berlin-spring-forward").keepSnapshots.map(\.item)
                == ["s-0326-2330Z", "s-0327-2330Z", "s-0328-2230Z", "s-0330-1200Z", "s-0331-2230Z", "s-0401-0900Z"])
    }

    /// Europe/Berlin falls back on 2027-10-31, also the month's last day (03:00 CEST → 02:00 CET,
    /// a 25-hour day with 02:30 twice: 00:30Z and 01:30Z). The local day runs from 22:00Z on
    /// 10-30 to 23:00Z on 10-31; three days kept.
    @Test func fallBackDayInABerlinPolicyIsTwentyFiveHoursLong() throws {
        let plan = try golden("documents-berlin-fall-back")
        #expect(plan.keepSnapshots.map(\.item) == ["f-1031-2245Z", "f-1101-1200Z", "f-1102-1100Z"])
        #expect(
            plan.dropSnapshots.map(\.item) == [
                "f-1030-2100Z", "f-1030-2215Z", "f-1031-0030Z", "f-1031-0130Z",
                "f-1031-2315Z", "f-1101-2330Z",
            ])
        #expect(plan.dropSnapshots.first { $0.item == "f-1031-0130Z" }?.reason == "not the last of 2027-10-31")
        #expect(try inUTC("documents-berlin-fall-back").keepSnapshots.map(\.item) == ["f-1031-2315Z", "f-1101-2330Z", "f-1102-1100Z"])
    }

    /// The leap day and the end of February in Berlin: 23:15Z on 02-29 is March 1st there.
    @Test func leapDayAndMonthEndInABerlinPolicyFollowLocalDates() throws {
        let plan = try golden("documents-berlin-month-ends-leap-day")
        #expect(plan.keepSnapshots.map(\.item) == ["l-0228-2230Z", "l-0229-2245Z", "l-0301-1100Z"])
        #expect(plan.dropSnapshots.map(\.item) == ["l-0228-2330Z", "l-0229-2315Z"])
        #expect(
            try inUTC("documents-berlin-month-ends-leap-day").keepSnapshots.map(\.item)
                == ["l-0228-2330Z", "l-0229-2315Z", "l-0301-1100Z"])
    }

    /// Now is 12:00 CET on 2027-11-15; 30 local days back is 12:00 CEST on 10-16 = 10:00Z, an
    /// hour before 30 × 24 h (11:00Z): the window starts at 10:00Z. b2 ended at 10:30Z, inside the
    /// window, so b1 (and its WAL from segment 2) must stay; in UTC b1 would go.
    @Test func windowAcrossFallBackStartsAtTheEarlierOfLocalAndElapsedDays() throws {
        let plan = try golden("window-berlin-fall-back")
        #expect(plan.windowStart == "2027-10-16T10:00:00Z")
        #expect(plan.keepSnapshots.map(\.item) == ["b1", "b2", "b3"])
        #expect(plan.dropWAL.map(\.item) == ["000000010000000000000001"])
        #expect(plan.problems.isEmpty)
        let utc = try inUTC("window-berlin-fall-back")
        #expect(utc.windowStart == "2027-10-16T11:00:00Z")
        #expect(utc.dropSnapshots.map(\.item) == ["b1"])
    }

    @Test func unknownTimeZoneIsRefused() throws {
        var input = try JSONDecoder().decode(
            RetentionInput.self,
            from: Data(contentsOf: Self.fixtures.appendingPathComponent("documents-berlin-fall-back.input.json")))
        input.timeZone = "Europe/Atlantis"
        #expect(throws: (any Error).self) { try RetentionPlanner.plan(input) }
    }
}
