import Foundation

/// What a `Range` header asks of a file of `size` bytes (RFC 9110 §14): the whole file, one
/// range, or nothing satisfiable (416). Only single `bytes=` ranges are honoured; a header in
/// another unit, with several ranges, or malformed, is ignored and the whole file sent, as
/// RFC 9110 §14.2 allows.
public enum ByteRangeRequest: Sendable, Equatable {
    case full
    /// First and last byte, inclusive, both inside the file.
    case partial(first: Int64, last: Int64)
    case unsatisfiable

    public static func parse(_ header: String?, size: Int64) -> ByteRangeRequest {
        guard let header else { return .full }
        let h = header.trimmingCharacters(in: .whitespaces)
        guard h.lowercased().hasPrefix("bytes="), !h.contains(",") else { return .full }
        let spec = h.dropFirst("bytes=".count).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .full }
        let a = spec[..<dash], b = spec[spec.index(after: dash)...]
        guard a.allSatisfy(\.isASCIIDigit), b.allSatisfy(\.isASCIIDigit), !(a.isEmpty && b.isEmpty) else { return .full }
        if a.isEmpty {
            // Suffix: the last n bytes.
            guard let n = Int64(b) else { return .full }
            guard n > 0, size > 0 else { return .unsatisfiable }
            return .partial(first: max(0, size - n), last: size - 1)
        }
        guard let first = Int64(a) else { return .unsatisfiable }  // beyond Int64: beyond any file
        var last = size - 1
        if !b.isEmpty {
            guard let l = Int64(b) else { return first < size ? .partial(first: first, last: size - 1) : .unsatisfiable }
            guard l >= first else { return .full }
            last = min(l, size - 1)
        }
        guard first < size else { return .unsatisfiable }
        return .partial(first: first, last: last)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
