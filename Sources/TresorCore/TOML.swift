/// A value in a TOML document, as far as Tresor's configuration and policy files use TOML:
/// tables, strings, integers, floats, booleans and arrays of those.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
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
}

/// A small TOML reader for configuration files. It accepts the subset Tresor writes and documents
/// (tables, dotted table headers, basic and literal strings, integers with `_`, floats, booleans,
/// single-line arrays, comments) and rejects everything else with a line number, rather than
/// guessing.
public enum TOML {
    public struct ParseError: TresorFailure {
        public let kind = FailureKind.usage
        public let message: String
        public let hint: String? = nil
    }

    public static func parse(_ text: String, source: String = "config") throws -> TOMLValue {
        var root: [String: TOMLValue] = [:]
        var tablePath: [String] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNo = index + 1
            let line = stripComment(String(rawLine)).trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            func fail(_ what: String) -> ParseError {
                ParseError(message: "\(source):\(lineNo): \(what)")
            }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), !line.hasPrefix("[[") else { throw fail("unsupported table header '\(line)'") }
                let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                tablePath = name.split(separator: ".").map { $0.trimmingCharacters(in: .whitespaces) }
                guard !tablePath.isEmpty, tablePath.allSatisfy({ isBareKey($0) }) else { throw fail("bad table name '\(name)'") }
                try ensureTable(&root, tablePath, fail)
                continue
            }
            guard let eq = line.firstIndex(of: "=") else { throw fail("expected 'key = value'") }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            let rawValue = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            let keyPath = key.split(separator: ".").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !keyPath.isEmpty, keyPath.allSatisfy({ isBareKey($0) }) else { throw fail("bad key '\(key)'") }
            var cursor = Substring(rawValue)
            let value = try parseValue(&cursor, fail)
            guard cursor.trimmingCharacters(in: .whitespaces).isEmpty else { throw fail("unexpected text after value") }
            try insert(&root, tablePath + keyPath, value, fail)
        }
        return .table(root)
    }

    private static func isBareKey(_ s: String) -> Bool {
        !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
    }

    private static func stripComment(_ line: String) -> String {
        var inBasic = false, inLiteral = false, escaped = false
        for (i, c) in zip(line.indices, line) {
            if escaped { escaped = false; continue }
            if inBasic && c == "\\" { escaped = true; continue }
            if c == "\"" && !inLiteral { inBasic.toggle() }
            else if c == "'" && !inBasic { inLiteral.toggle() }
            else if c == "#" && !inBasic && !inLiteral { return String(line[..<i]) }
        }
        return line
    }

    private static func ensureTable(_ table: inout [String: TOMLValue], _ path: [String], _ fail: (String) -> ParseError) throws {
        guard let first = path.first else { return }
        var child: [String: TOMLValue]
        switch table[first] {
        case nil: child = [:]
        case .table(let t)?: child = t
        default: throw fail("'\(first)' is both a value and a table")
        }
        try ensureTable(&child, Array(path.dropFirst()), fail)
        table[first] = .table(child)
    }

    private static func insert(_ table: inout [String: TOMLValue], _ path: [String], _ value: TOMLValue, _ fail: (String) -> ParseError) throws {
        if path.count == 1 {
            guard table[path[0]] == nil else { throw fail("duplicate key '\(path[0])'") }
            table[path[0]] = value
            return
        }
        var child: [String: TOMLValue]
        switch table[path[0]] {
        case nil: child = [:]
        case .table(let t)?: child = t
        default: throw fail("'\(path[0])' is both a value and a table")
        }
        try insert(&child, Array(path.dropFirst()), value, fail)
        table[path[0]] = .table(child)
    }

    private static func parseValue(_ s: inout Substring, _ fail: (String) -> ParseError) throws -> TOMLValue {
        s = s.drop(while: { $0 == " " || $0 == "\t" })
        guard let c = s.first else { throw fail("missing value") }
        if c == "\"" {
            s.removeFirst()
            var out = ""
            while let ch = s.first {
                s.removeFirst()
                if ch == "\"" { return .string(out) }
                if ch == "\\" {
                    guard let e = s.first else { break }
                    s.removeFirst()
                    switch e {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "\\": out.append("\\")
                    case "\"": out.append("\"")
                    default: throw fail("unsupported escape '\\\(e)'")
                    }
                } else {
                    out.append(ch)
                }
            }
            throw fail("unterminated string")
        }
        if c == "'" {
            s.removeFirst()
            guard let end = s.firstIndex(of: "'") else { throw fail("unterminated string") }
            let out = String(s[..<end])
            s = s[s.index(after: end)...]
            return .string(out)
        }
        if c == "[" {
            s.removeFirst()
            var items: [TOMLValue] = []
            while true {
                s = s.drop(while: { $0 == " " || $0 == "\t" })
                if s.first == "]" { s.removeFirst(); return .array(items) }
                items.append(try parseValue(&s, fail))
                s = s.drop(while: { $0 == " " || $0 == "\t" })
                if s.first == "," { s.removeFirst(); continue }
                if s.first == "]" { s.removeFirst(); return .array(items) }
                throw fail("expected ',' or ']' in array")
            }
        }
        let token = String(s.prefix(while: { $0 != "," && $0 != "]" && $0 != " " && $0 != "\t" }))
        s = s.dropFirst(token.count)
        switch token {
        case "true": return .bool(true)
        case "false": return .bool(false)
        default: break
        }
        let digits = token.replacingOccurrences(of: "_", with: "")
        if let i = Int(digits) { return .integer(i) }
        if let d = Double(digits) { return .float(d) }
        throw fail("cannot read value '\(token)' (strings need quotes)")
    }
}
