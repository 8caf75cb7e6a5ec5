import Foundation
import Testing
import TresorCore

/// A time the user or a manifest wrote is read whole or not at all.
@Suite struct TimeFormatTests {
    @Test func aDateFollowedByWordsIsNoTime() {
        #expect(TimeFormat.parse("2026-11-02 sometime later") == nil)
        #expect(TimeFormat.parse("2026-11-02x") == nil)
    }

    @Test func theAcceptedFormsStillRead() {
        let day = TimeFormat.parse("2026-11-02")
        #expect(day == Date(timeIntervalSince1970: 1_793_577_600))
        #expect(TimeFormat.parse("2026-11-02T00:00:00Z") == day)
        #expect(TimeFormat.parse("2026-11-02 00:00:00") == day)
        #expect(TimeFormat.parse("2026-11-02T00:00:00.000Z") == day)
        #expect(TimeFormat.parse("@1793577600") == day)
    }
}
