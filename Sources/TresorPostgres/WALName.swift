import TresorCore

/// Names of files in `pg_wal` and positions in the WAL, with 16 MiB segments (PostgreSQL's
/// default, which `tresor pg setup` checks the server uses).
///
/// A segment is named `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the segment number split into
/// `XXXXXXXX` (number / 256) and `YYYYYYYY` (number % 256), all upper-case hex.
public struct WALName: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Bytes per WAL segment (PostgreSQL's default; the only size supported).
    public static let segmentSize: UInt64 = 16 << 20
    static let segmentsPerXLogID: UInt64 = 0x1_0000_0000 / segmentSize

    /// Which of the files PostgreSQL archives this is.
    public enum Kind: Sendable, Hashable {
        case segment
        /// `<segment>.partial`: the last, incomplete segment of a timeline left at promotion.
        case partial
        /// `<segment>.<offset>.backup`: the backup history file.
        case backup(String)
        /// `TTTTTTTT.history`.
        case history
        /// `<segment>.streaming`: the part of a segment `tresor pg stream` has received so far
        /// (Tresor's own object, never a file PostgreSQL archives; replaced as the segment grows
        /// and removed once the whole segment is stored).
        case streaming
    }

    /// The timeline ID (the first 8 hex digits).
    public var timeline: UInt32
    /// The segment number (0 for history files).
    public var segment: UInt64
    public var kind: Kind

    public init(timeline: UInt32, segment: UInt64, kind: Kind = .segment) {
        self.timeline = timeline
        self.segment = segment
        self.kind = kind
    }

    /// Parses a file name as PostgreSQL passes it (`%f`); nil for anything else.
    public init?(_ name: String) {
        func hex(_ s: Substring) -> UInt64? {
            s.count == 8 && s.allSatisfy({ $0.isHexDigit && !$0.isLowercase }) ? UInt64(s, radix: 16) : nil
        }
        let base = name.prefix(24)
        if name.count == 16, name.hasSuffix(".history"), let t = hex(name.prefix(8)) {
            self.init(timeline: UInt32(t), segment: 0, kind: .history)
            return
        }
        guard name.count >= 24, let t = hex(base.prefix(8)), let hi = hex(base.dropFirst(8).prefix(8)),
            let lo = hex(base.dropFirst(16).prefix(8)), lo < Self.segmentsPerXLogID, t > 0
        else { return nil }
        let rest = name.dropFirst(24)
        let kind: Kind
        if rest.isEmpty {
            kind = .segment
        } else if rest == ".partial" {
            kind = .partial
        } else if rest == ".streaming" {
            kind = .streaming
        } else if rest.hasPrefix("."), rest.hasSuffix(".backup"), rest.count == 16, hex(rest.dropFirst().prefix(8)) != nil {
            kind = .backup(String(rest.dropFirst().prefix(8)))
        } else {
            return nil
        }
        self.init(timeline: UInt32(t), segment: hi * Self.segmentsPerXLogID + lo, kind: kind)
    }

    /// The segment holding `lsn` on `timeline`.
    public static func segment(containing lsn: UInt64, timeline: UInt32) -> WALName {
        WALName(timeline: timeline, segment: lsn / segmentSize)
    }

    /// The timeline as 8 hex digits: the directory WAL objects are filed under.
    public var timelineHex: String { hex8(UInt64(timeline)) }

    public var description: String {
        switch kind {
        case .history: return timelineHex + ".history"
        case .segment: return segmentName
        case .partial: return segmentName + ".partial"
        case .streaming: return segmentName + ".streaming"
        case .backup(let offset): return segmentName + "." + offset + ".backup"
        }
    }

    var segmentName: String {
        timelineHex + hex8(segment / Self.segmentsPerXLogID) + hex8(segment % Self.segmentsPerXLogID)
    }

    /// The next segment on the same timeline.
    public var next: WALName { WALName(timeline: timeline, segment: segment + 1) }

    /// The same segment with another kind (`.segment` for a `.streaming` name, and back).
    public func with(kind: Kind) -> WALName { WALName(timeline: timeline, segment: segment, kind: kind) }

    /// The first LSN of this segment.
    public var startLSN: UInt64 { segment * Self.segmentSize }

    public static func < (a: WALName, b: WALName) -> Bool {
        (a.timeline, a.segment, a.description) < (b.timeline, b.segment, b.description)
    }
}

/// LSNs as PostgreSQL prints them: `X/X`, the high and low 32 bits in hex.
public enum LSN {
    /// Parses `X/X`; nil for anything else.
    public static func parse(_ text: String) -> UInt64? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let hi = UInt64(parts[0], radix: 16), let lo = UInt64(parts[1], radix: 16),
            hi <= 0xFFFF_FFFF, lo <= 0xFFFF_FFFF
        else { return nil }
        return hi << 32 | lo
    }

    /// Formats as PostgreSQL does (upper-case hex, no leading zeros).
    public static func format(_ lsn: UInt64) -> String {
        String(lsn >> 32, radix: 16, uppercase: true) + "/" + String(lsn & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }
}

func hex8(_ v: UInt64) -> String {
    let s = String(v, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 8 - s.count)) + s
}
