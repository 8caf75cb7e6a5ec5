import Foundation
import TresorCore

/// An incremental reader of the ustar stream PostgreSQL's BASE_BACKUP sends: bytes go in as they
/// arrive (any split), entries and their content come out, without holding a file in memory.
///
/// Only what PostgreSQL writes is accepted: regular files, directories and symlinks with ustar
/// headers (name and prefix fields, octal or base-256 numbers). Anything else is an error rather
/// than a silently skipped file.
public struct TarReader {
    /// One entry's header.
    public struct Entry: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            case file
            case directory
            case symlink(String)
        }

        public var path: String
        public var kind: Kind
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        public var size: UInt64
        public var mtime: Int64
    }

    /// What the reader found in the bytes given to it.
    public enum Event {
        case begin(Entry)
        case data(UnsafeRawBufferPointer)
        case end(Entry)
    }

    private var header: [UInt8] = []
    private var current: Entry?
    private var remaining: UInt64 = 0
    private var padding = 0
    private var zeroBlocks = 0
    /// True after the two zero blocks that end an archive.
    public private(set) var finished = false

    /// A reader at the start of an archive.
    public init() {}

    /// Consumes `bytes`, calling `handle` for every event in order.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ handle: (Event) throws -> Void) throws {
        var off = 0
        while off < bytes.count {
            if let entry = current, remaining > 0 {
                let n = Int(min(remaining, UInt64(bytes.count - off)))
                try handle(.data(UnsafeRawBufferPointer(rebasing: bytes[off..<off + n])))
                off += n
                remaining -= UInt64(n)
                if remaining == 0 {
                    try handle(.end(entry))
                    current = nil
                }
                continue
            }
            if padding > 0 {
                let n = min(padding, bytes.count - off)
                padding -= n
                off += n
                continue
            }
            let n = min(512 - header.count, bytes.count - off)
            header += bytes[off..<off + n]
            off += n
            guard header.count == 512 else { continue }
            defer { header.removeAll(keepingCapacity: true) }
            if header.allSatisfy({ $0 == 0 }) {
                zeroBlocks += 1
                if zeroBlocks >= 2 { finished = true }
                continue
            }
            if finished { throw PostgresError(.failed, "base backup stream has data after the end of its tar archive") }
            let entry = try Self.parseHeader(header)
            try handle(.begin(entry))
            if case .file = entry.kind, entry.size > 0 {
                current = entry
                remaining = entry.size
                padding = Int((512 - entry.size % 512) % 512)
            } else {
                try handle(.end(entry))
            }
        }
    }

    static func parseHeader(_ h: [UInt8]) throws -> Entry {
        func text(_ r: Range<Int>) -> String {
            let field = h[r]
            let end = field.firstIndex(of: 0) ?? r.upperBound
            return String(decoding: h[r.lowerBound..<end], as: UTF8.self)
        }
        func number(_ r: Range<Int>) throws -> UInt64 {
            if h[r.lowerBound] & 0x80 != 0 {
                var v: UInt64 = UInt64(h[r.lowerBound] & 0x7F)
                for b in h[(r.lowerBound + 1)..<r.upperBound] {
                    guard v >> 56 == 0 else { throw PostgresError(.failed, "base backup tar header has an out-of-range number") }
                    v = v << 8 | UInt64(b)
                }
                return v
            }
            let t = text(r).trimmingCharacters(in: .whitespaces)
            if t.isEmpty { return 0 }
            guard let v = UInt64(t, radix: 8) else { throw PostgresError(.failed, "base backup tar header has a malformed number") }
            return v
        }
        var sum: UInt64 = 0
        for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : UInt64(b) }
        guard try number(148..<156) == sum else { throw PostgresError(.failed, "base backup tar header fails its checksum") }
        var path = text(0..<100)
        let prefix = text(345..<500)
        if text(257..<262) == "ustar", !prefix.isEmpty { path = prefix + "/" + path }
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasPrefix("./") { path.removeFirst(2) }
        let kind: Entry.Kind
        switch h[156] {
        case 0, UInt8(ascii: "0"): kind = .file
        case UInt8(ascii: "5"): kind = .directory
        case UInt8(ascii: "2"): kind = .symlink(text(157..<257))
        default: throw PostgresError(.failed, "base backup tar entry '\(path)' has unsupported type '\(Character(UnicodeScalar(h[156])))'")
        }
        // Base-256 fields can hold values no uid, gid or time has: damage, not a trap.
        func small<T: FixedWidthInteger>(_ r: Range<Int>, as: T.Type) throws -> T {
            guard let v = T(exactly: try number(r)) else { throw PostgresError(.failed, "base backup tar entry '\(path)' has an out-of-range number") }
            return v
        }
        return Entry(
            path: path, kind: kind, mode: UInt32(try number(100..<108) & 0o7777), uid: try small(108..<116, as: UInt32.self),
            gid: try small(116..<124, as: UInt32.self), size: try number(124..<136), mtime: try small(136..<148, as: Int64.self))
    }
}
