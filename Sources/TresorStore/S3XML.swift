/// Just enough XML for S3's answers: the text of `<Name>…</Name>` elements, in order.
///
/// S3 responses are flat, generated documents (no CDATA, no comments inside values, no
/// attributes on the elements Tresor reads), so a scanner over the bytes is exact for them and
/// avoids linking libxml2 through FoundationXML. Not a general XML parser.
enum S3XML {
    /// The contents of every `<name>` element, raw (entities still encoded).
    static func blocks(_ name: String, in text: Substring) -> [Substring] {
        let open = "<\(name)>", close = "</\(name)>"
        var out: [Substring] = []
        var rest = text[...]
        while let start = rest.range(of: open) {
            guard let end = rest[start.upperBound...].range(of: close) else { break }
            out.append(rest[start.upperBound..<end.lowerBound])
            rest = rest[end.upperBound...]
        }
        return out
    }

    /// The decoded text of the first `<name>` element, or nil.
    static func value(_ name: String, in text: Substring) -> String? {
        blocks(name, in: text).first.map { decode($0) }
    }

    static func value(_ name: String, in text: String) -> String? { value(name, in: text[...]) }

    /// Replaces the five predefined entities and numeric character references.
    static func decode(_ s: Substring) -> String {
        guard s.contains("&") else { return String(s) }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].firstIndex(of: ";") {
                let entity = s[s.index(after: i)..<semi]
                var replacement: String?
                switch entity {
                case "amp": replacement = "&"
                case "lt": replacement = "<"
                case "gt": replacement = ">"
                case "quot": replacement = "\""
                case "apos": replacement = "'"
                default:
                    if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16), let u = Unicode.Scalar(v) {
                        replacement = String(Character(u))
                    } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let u = Unicode.Scalar(v) {
                        replacement = String(Character(u))
                    }
                }
                if let replacement {
                    out += replacement
                    i = s.index(after: semi)
                    continue
                }
            }
            out.append(s[i])
            i = s.index(after: i)
        }
        return out
    }

    /// Escapes text for an XML element body.
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
