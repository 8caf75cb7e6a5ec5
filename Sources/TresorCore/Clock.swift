import Foundation

/// The one source of "now" for every time-based rule.
///
/// Library code never calls `Date()`; it asks the clock it was given. `--now` / `TRESOR_NOW`
/// install a ``FixedClock`` so a test can run day 91 after a contract ends in one second.
public protocol Clock: Sendable {
    func now() -> Date
}

/// The machine's wall clock.
public struct SystemClock: Clock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that always answers the same instant.
public struct FixedClock: Clock {
    public let instant: Date
    public init(_ instant: Date) { self.instant = instant }
    public func now() -> Date { instant }
}

/// Parsing and printing of the times users type and read (RFC 3339 / ISO 8601, UTC by default).
public enum TimeFormat {
    /// Parses `2026-11-27`, `2026-11-27T10:00:00Z`, `2026-11-27T10:00:00.123+01:00`,
    /// `2026-11-27 10:00:00` (UTC), or `@1764237600` (Unix seconds).
    public static func parse(_ text: String) -> Date? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("@"), let secs = Double(t.dropFirst()) { return Date(timeIntervalSince1970: secs) }
        let normalized = t.replacingOccurrences(of: " ", with: "T")
        for options in [
            ISO8601DateFormatter.Options.withInternetDateTime,
            [.withInternetDateTime, .withFractionalSeconds],
        ] {
            let f = ISO8601DateFormatter()
            f.formatOptions = options
            if let d = f.date(from: normalized) { return d }
            if let d = f.date(from: normalized + "Z") { return d }
        }
        // Foundation's full-date parser ignores whatever follows the date ("2026-11-02 later"
        // would read as that day): only a bare date is one.
        guard normalized.utf8.count == 10 else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withFullDate]
        return f.date(from: normalized)
    }

    /// `2026-11-27T10:00:00Z` (or with milliseconds when `fractional`).
    public static func string(_ date: Date, fractional: Bool = false) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = fractional ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return f.string(from: date)
    }
}

/// A length of time written the way policies write it: `90d`, `12h`, `30m`, `45s`, `2w`.
public struct PolicyDuration: Sendable, Equatable, CustomStringConvertible {
    public let seconds: Double

    public init(seconds: Double) { self.seconds = seconds }

    public init?(_ text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard let unit = t.last, let value = Double(t.dropLast()), value >= 0 else { return nil }
        let scale: Double
        switch unit {
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86400
        case "w": scale = 7 * 86400
        default: return nil
        }
        self.seconds = value * scale
    }

    public var description: String {
        if seconds.truncatingRemainder(dividingBy: 86400) == 0 { return "\(Int(seconds / 86400))d" }
        if seconds.truncatingRemainder(dividingBy: 3600) == 0 { return "\(Int(seconds / 3600))h" }
        return "\(Int(seconds))s"
    }
}
