/// A JSON value in an evidence record's payload: ids, hashes, counts, times, versions, results.
///
/// Numbers are integers only (durations in milliseconds, sizes in bytes), so every reader parses
/// them alike; there is no floating point in the format. Serialization is deterministic: object
/// keys sorted by their UTF-8 bytes, no whitespace (see ``EvidenceJSON``).
public enum EvidenceValue: Sendable, Equatable, Codable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case null
    case array([EvidenceValue])
    case object([String: EvidenceValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([EvidenceValue].self) {
            self = .array(a)
        } else if let o = try? c.decode([String: EvidenceValue].self) {
            self = .object(o)
        } else {
            // Fractional numbers are not part of the format (see the type's documentation).
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an evidence value (fractional number?)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .bool(let b): try c.encode(b)
        case .null: try c.encodeNil()
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// The string, when this is one.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

extension EvidenceValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: EvidenceValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, EvidenceValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

/// The one JSON writer of the evidence format: compact, deterministic, UTF-8.
///
/// Strings are written as their UTF-8 bytes with only `"`, `\` and the control characters below
/// U+0020 escaped (`\"`, `\\`, `\n`, `\r`, `\t`, else `\u00XX`); object keys are sorted by their
/// UTF-8 bytes; there is no whitespace anywhere. Verifiers never re-serialize (they check the
/// signed bytes as they are in the file), so this only makes Tresor's own output reproducible.
enum EvidenceJSON {
    static func write(_ value: EvidenceValue, into out: inout [UInt8]) {
        switch value {
        case .string(let s): string(s, into: &out)
        case .int(let i): out += Array(String(i).utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .null: out += Array("null".utf8)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(v, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            object(o.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }, into: &out)
        }
    }

    /// An object with its members in the order given.
    static func object(_ members: [(key: String, value: EvidenceValue)], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (i, m) in members.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            string(m.key, into: &out)
            out.append(UInt8(ascii: ":"))
            write(m.value, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    static func string(_ s: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [92, 34]
            case UInt8(ascii: "\\"): out += [92, 92]
            case 10: out += [92, UInt8(ascii: "n")]
            case 13: out += [92, UInt8(ascii: "r")]
            case 9: out += [92, UInt8(ascii: "t")]
            case 0..<32: out += Array("\\u00".utf8) + [hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
