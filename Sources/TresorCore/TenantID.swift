/// A tenant's name, checked once where it enters the program (a command-line argument, a
/// catalog row) and trusted after that. It becomes a key segment in every store
/// (`tenants/<id>/`) and a file name in the home (`pg/<id>/`, `locks/<id>.lock`), so it is kept
/// simple: 1 to 64 characters from lowercase ASCII letters, digits, `-` and `_`, not starting
/// with `-` (which a command line would read as an option).
public struct TenantID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The name as text; always satisfies the rules above.
    public let rawValue: String

    public static let maxLength = 64

    /// Checks `text` and throws a usage failure (exit 2) naming it and the rules when it breaks them.
    public init(_ text: String) throws {
        guard Self.isValid(text) else {
            throw CoreError.usage(
                "invalid tenant name '\(text)': use 1-\(Self.maxLength) lowercase letters, digits, '-' or '_', not starting with '-'",
                hint: "tenant names look like acme, acme-eu or acme_2; tresor tenant list shows the existing ones")
        }
        rawValue = text
    }

    public static func isValid(_ text: String) -> Bool {
        let bytes = text.utf8
        return !bytes.isEmpty && bytes.count <= maxLength && bytes.first != UInt8(ascii: "-")
            && bytes.allSatisfy { c in
                (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
                    || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
            }
    }

    public var description: String { rawValue }

    public static func < (a: TenantID, b: TenantID) -> Bool { a.rawValue < b.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(text)
        } catch let e as CoreError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: e.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}
