import Foundation

// Catalog dates are integer Unix milliseconds (UTC): exact, sortable, and the same in SQLite
// and PostgreSQL (`bigint`). Anything finer than a millisecond is rounded to the nearest one.

extension Date {
    /// Milliseconds since 1970-01-01T00:00:00Z, rounded to the nearest millisecond.
    var unixMilliseconds: Int64 {
        let millis = (timeIntervalSince1970 * 1000).rounded()
        // Int64(Double) traps outside its range; dates ±292 million years away saturate instead.
        if millis.isNaN { return 0 }
        if millis >= 9.2e18 { return .max }
        if millis <= -9.2e18 { return .min }
        return Int64(millis)
    }

    /// Built the way `Date(timeIntervalSince1970:)` builds a literal such as `1764237600.123`,
    /// so such a date reads back equal to what was stored.
    init(unixMilliseconds millis: Int64) {
        self.init(timeIntervalSince1970: Double(millis) / 1000)
    }
}

extension SQLiteValue {
    init(_ date: Date?) { self = date.map { .int64($0.unixMilliseconds) } ?? .null }
}

extension CatalogRow {
    func date(_ column: Int32) -> Date { Date(unixMilliseconds: int64(column)) }
    func optionalDate(_ column: Int32) -> Date? { optionalInt64(column).map(Date.init(unixMilliseconds:)) }
}
