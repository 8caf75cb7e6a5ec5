import Foundation

/// A directory under the system temp dir, removed when the value is released.
public final class TempDirectory: @unchecked Sendable {
    public let url: URL
    public var path: String { url.path }

    public init(_ label: String = "tresor-test") {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func sub(_ name: String) -> URL { url.appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A deterministic pseudo-random generator (SplitMix64) for reproducible test data.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i + 8 <= count {
                buf.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < count {
                buf[i] = UInt8(truncatingIfNeeded: next())
                i += 1
            }
        }
        return out
    }

    /// Text-like bytes that compress well.
    public mutating func text(_ count: Int) -> [UInt8] {
        let words = ["backup", "tenant", "invoice", "Zürich", "report", "2026", "données", "ledger", "audit", "контракт", "\n"]
        var out: [UInt8] = []
        out.reserveCapacity(count + 16)
        while out.count < count {
            out += Array(words[Int(next() % UInt64(words.count))].utf8)
            out.append(32)
        }
        return Array(out.prefix(count))
    }
}
