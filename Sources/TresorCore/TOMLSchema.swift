/// The keys a TOML file may hold and what each value must be. Files are checked against it when
/// they are loaded, so a misspelt key, a wrong type or an impossible value stops the program
/// with one error naming the file, the line, the key and the reason (exit 2), instead of being
/// ignored or failing later, far from its cause.
public struct TOMLSchema: Sendable {
    /// What a key's value must be.
    public enum Field: Sendable {
        case string
        case bool
        /// A whole number in the range.
        case integer(ClosedRange<Int>)
        /// A duration string (``PolicyDuration`` syntax) whose length is in the range, in seconds.
        case duration(ClosedRange<Double>)

        var expectation: String {
            switch self {
            case .string: "a string"
            case .bool: "true or false"
            case .integer(let r): "a whole number in \(r.lowerBound)...\(r.upperBound)"
            case .duration(let r):
                "a duration from \(PolicyDuration(seconds: r.lowerBound)) to \(PolicyDuration(seconds: r.upperBound)) "
                    + "such as \"30d\" or \"12h\" (units s, m, h, d, w)"
            }
        }
    }

    /// Leaf keys by dotted path (`backup.compression_level`).
    public let fields: [String: Field]
    /// What the files are called in hints (`policies/default.toml`).
    public let reference: String

    public init(_ fields: [String: Field], reference: String) {
        self.fields = fields
        self.reference = reference
    }

    /// Checks every key of `document`; throws for the first problem in key order.
    public func validate(_ document: TOMLDocument) throws {
        try validate(document.root, path: "", in: document)
    }

    private func validate(_ value: TOMLValue, path: String, in document: TOMLDocument) throws {
        // A key may be a leaf or a table (`catalog = "postgresql://..."` or `[catalog] path`):
        // a table there is checked against the keys below it.
        var isTable = false
        if case .table = value { isTable = true }
        if let field = fields[path], !(isTable && fields.keys.contains(where: { $0.hasPrefix(path + ".") })) {
            try check(value, against: field, path: path, in: document)
            return
        }
        guard case .table(let table) = value else {
            throw error(document, path, "unknown key", hint: hint(forUnknown: path))
        }
        if !path.isEmpty && !fields.keys.contains(where: { $0.hasPrefix(path + ".") }) {
            throw error(document, path, "unknown table", hint: hint(forUnknown: path))
        }
        for (key, child) in table.sorted(by: { $0.key < $1.key }) {
            try validate(child, path: path.isEmpty ? key : path + "." + key, in: document)
        }
    }

    /// Checks one value; used by the loaders for values read after merging files, too.
    public func check(_ value: TOMLValue, against field: Field, path: String, in document: TOMLDocument) throws {
        guard let reason = problem(value, field) else { return }
        throw error(document, path, reason, hint: nil)
    }

    func problem(_ value: TOMLValue, _ field: Field) -> String? {
        switch (field, value) {
        case (.string, .string), (.bool, .bool): return nil
        case (.integer(let r), .integer(let i)):
            return r.contains(i) ? nil : "\(i) is out of range: must be \(field.expectation)"
        case (.duration(let r), .string(let s)):
            guard let d = PolicyDuration(s) else { return "'\(s)' is not a duration: must be \(field.expectation)" }
            return r.contains(d.seconds) ? nil : "\(s) is out of range: must be \(field.expectation)"
        default:
            return "must be \(field.expectation), not \(value.typeName)"
        }
    }

    /// Names the keys (or tables) the schema knows next to `path`, so a misspelling is easy to spot.
    private func hint(forUnknown path: String) -> String {
        let parent = path.split(separator: ".").dropLast().joined(separator: ".")
        let prefix = parent.isEmpty ? "" : parent + "."
        let known = Set(
            fields.keys.filter { $0.hasPrefix(prefix) }.compactMap {
                $0.dropFirst(prefix.count).split(separator: ".").first.map(String.init)
            }
        ).sorted().joined(separator: ", ")
        let what = parent.isEmpty ? "known tables" : "known keys in [\(parent)]"
        return "check the spelling; \(what): \(known) (see \(reference))"
    }

    private func error(_ document: TOMLDocument, _ path: String, _ reason: String, hint: String?) -> CoreError {
        CoreError.usage("\(document.location(of: path)): \(path): \(reason)", hint: hint)
    }
}
