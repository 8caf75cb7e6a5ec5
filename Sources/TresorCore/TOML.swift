import Foundation
internal import TOMLKit

/// A value in a TOML document: what the configuration and policy files are read into. Parsing is
/// TOMLKit's (toml++, full TOML 1.0); this enum is Tresor's own so that no other module depends
/// on TOMLKit's types.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    /// An offset date-time, local date-time, local date or local time, in its TOML spelling.
    /// Tresor's files use none; the case exists so that a schema can name the wrong type.
    case dateTime(String)
    case array([TOMLValue])
    case table([String: TOMLValue])

    public subscript(key: String) -> TOMLValue? {
        if case .table(let t) = self { return t[key] }
        return nil
    }

    /// Looks up a dotted path such as `backup.compression_level`.
    public func value(at path: String) -> TOMLValue? {
        var current: TOMLValue? = self
        for part in path.split(separator: ".") { current = current?[String(part)] }
        return current
    }

    /// The name of the value's type as a message shows it: `a table`, `a string`, ...
    public var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "a whole number"
        case .float: "a decimal number"
        case .bool: "true or false"
        case .dateTime: "a date or time"
        case .array: "an array"
        case .table: "a table"
        }
    }
}

/// A parsed TOML file: its values, where it came from, and the line each key is on, so that
/// errors found after parsing (an unknown key, a wrong type, an impossible value) can name the
/// line as well as the file.
public struct TOMLDocument: Sendable {
    /// The document's root table (always `.table`).
    public let root: TOMLValue
    /// The file's path, or another name for the text, as messages show it.
    public let source: String
    private let lines: [String: Int]

    /// The 1-based line that defines the dotted `path`, or of its nearest enclosing table that
    /// has one; `nil` when neither is known (a key inside an inline table spread over lines).
    public func line(of path: String) -> Int? {
        var parts = path.split(separator: ".").map(String.init)
        while !parts.isEmpty {
            if let l = lines[parts.joined(separator: ".")] { return l }
            parts.removeLast()
        }
        return nil
    }

    /// `source:line` for `path`, or `source` alone when the line is unknown.
    public func location(of path: String) -> String {
        line(of: path).map { "\(source):\($0)" } ?? source
    }

    init(root: TOMLValue, source: String, lines: [String: Int]) {
        self.root = root
        self.source = source
        self.lines = lines
    }
}

/// Reads TOML text through TOMLKit.
public enum TOML {
    public struct ParseError: TresorFailure {
        public let kind = FailureKind.usage
        /// `source:line: what toml++ reported`.
        public let message: String
        public let hint: String? = "the file must be valid TOML (https://toml.io/en/v1.0.0)"
    }

    /// Parses `text`; a syntax error names `source` and the line.
    public static func parse(_ text: String, source: String = "config") throws -> TOMLValue {
        try document(text, source: source).root
    }

    /// Parses `text` and records the line of every key, for messages about its values.
    public static func document(_ text: String, source: String = "config") throws -> TOMLDocument {
        // TOMLKit hands the text to toml++ as a C string, which would end at a NUL byte and
        // silently parse a prefix; TOML forbids NUL anyway, so refuse it here with its line.
        if let nul = text.firstIndex(of: "\0") {
            let line = text[..<nul].utf8.reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            throw ParseError(message: "\(source):\(line): NUL character in the file")
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ParseError(message: "\(source):\(e.source.begin.line): \(e.description)")
        }
        return TOMLDocument(
            root: try convert(table, path: "", source: source), source: source,
            lines: keyLines(text))
    }

    private static func convert(_ value: any TOMLValueConvertible, path: String, source: String) throws -> TOMLValue {
        switch value.type {
        case .table:
            guard let t = value.table else { break }
            var out: [String: TOMLValue] = [:]
            for (key, child) in t {
                out[key] = try convert(child, path: path.isEmpty ? key : path + "." + key, source: source)
            }
            return .table(out)
        case .array:
            guard let a = value.array else { break }
            return .array(try a.map { try convert($0, path: path, source: source) })
        case .string:
            if let s = value.string { return .string(s) }
        case .int:
            if let i = value.int { return .integer(i) }
        case .double:
            if let d = value.double { return .float(d) }
        case .bool:
            if let b = value.bool { return .bool(b) }
        case .date, .time, .dateTime:
            return .dateTime(value.debugDescription)
        }
        // TOMLKit's accessors answer for the type it reported; reaching here is a TOMLKit bug,
        // reported rather than dropped.
        throw ParseError(message: "\(source): \(path): value of type \(value.type) could not be read")
    }

    /// The first line each dotted key path appears on: table headers, `key = value` lines and
    /// the tables a dotted key implies. A locator, not a parser: TOMLKit has already accepted
    /// the text, and a path this misses only loses the line number in a message.
    static func keyLines(_ text: String) -> [String: Int] {
        var result: [String: Int] = [:]
        var table: [String] = []
        var openMultiline: String?
        // Split on the byte: to String, "\r\n" is one Character, not a "\n".
        for (index, raw) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let lineNo = index + 1
            let line = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if let delimiter = openMultiline {
                if line.components(separatedBy: delimiter).count % 2 == 0 { openMultiline = nil }
                continue
            }
            if line.isEmpty || line.hasPrefix("#") { continue }
            func record(_ path: [String]) {
                for n in 1...max(1, path.count) where n <= path.count {
                    let key = path.prefix(n).joined(separator: ".")
                    if result[key] == nil { result[key] = lineNo }
                }
            }
            if line.hasPrefix("[") {
                let inner = line.drop(while: { $0 == "[" })
                guard let close = indexOutsideQuotes(of: "]", in: inner) else { continue }
                table = splitKey(inner[..<close])
                record(table)
                continue
            }
            guard let eq = indexOutsideQuotes(of: "=", in: Substring(line)) else { continue }
            record(table + splitKey(line[..<eq]))
            let rest = line[line.index(after: eq)...]
            for delimiter in ["\"\"\"", "'''"] where rest.components(separatedBy: delimiter).count == 2 {
                openMultiline = delimiter
            }
        }
        return result
    }

    private static func indexOutsideQuotes(of target: Character, in s: Substring) -> Substring.Index? {
        var quote: Character?
        var escaped = false
        for i in s.indices {
            let c = s[i]
            if escaped { escaped = false; continue }
            if let q = quote {
                if q == "\"" && c == "\\" { escaped = true } else if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == target {
                return i
            } else if c == "#" {
                return nil
            }
        }
        return nil
    }

    private static func splitKey(_ s: Substring) -> [String] {
        var parts: [String] = []
        var rest = s
        while let dot = indexOutsideQuotes(of: ".", in: rest) {
            parts.append(unquote(rest[..<dot]))
            rest = rest[rest.index(after: dot)...]
        }
        parts.append(unquote(rest))
        return parts
    }

    private static func unquote(_ s: Substring) -> String {
        let t = s.trimmingCharacters(in: .whitespaces)
        if t.count >= 2, let f = t.first, f == t.last, f == "\"" || f == "'" { return String(t.dropFirst().dropLast()) }
        return t
    }
}
