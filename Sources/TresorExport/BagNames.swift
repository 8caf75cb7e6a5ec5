/// How names are written where bytes cannot go as they are.
///
/// - In a zip archive every entry name must be UTF-8. A name that is not valid UTF-8 is escaped:
///   every byte that is not part of a valid UTF-8 sequence, and every `%` of that name, becomes
///   `%XX` (two uppercase hex digits). Valid UTF-8 names are never changed. Each escaped name is
///   listed with its original bytes in `data/README.txt`.
/// - In a BagIt manifest a path's CR and LF are written as `%0D` and `%0A`, and `%` is left as it
///   is. RFC 8493 §2.1.3 also asks for `%` as `%25`, but no validator decodes that (the Library of
///   Congress's bagit-python 1.9 reads `%25` literally and would report such a file missing:
///   bagit-python issue 157), so Tresor writes what validators read. A name that is not valid UTF-8 (possible only in tar exports, which keep names as
///   bytes) has its invalid bytes written as `%XX` there too; such a line is not valid BagIt and
///   the export says so (see ``BagWriter/nonUTF8Names``).
enum BagNames {
    /// The zip entry name for `path`.
    static func zipName(_ path: [UInt8]) -> [UInt8] {
        if String(validating: path, as: UTF8.self) != nil { return path }
        return escaping(path) { $0 == UInt8(ascii: "%") ? "%25" : nil }
    }

    /// `path` as written in a manifest line.
    static func manifestPath(_ path: [UInt8]) -> [UInt8] {
        escaping(path) { b in
            switch b {
            case 0x0D: return "%0D"
            case 0x0A: return "%0A"
            default: return nil
            }
        }
    }

    /// `path` as a line of `tresor-removed-paths.txt`: every `%`, CR, LF and byte outside a valid
    /// UTF-8 sequence as `%XX`, so the line is UTF-8 and decodes back to the exact bytes.
    static func listedPath(_ path: [UInt8]) -> [UInt8] {
        escaping(path) { b in
            switch b {
            case 0x25: return "%25"
            case 0x0D: return "%0D"
            case 0x0A: return "%0A"
            default: return nil
            }
        }
    }

    /// `path` with every byte outside a valid UTF-8 sequence as `%XX`, and the ASCII bytes that
    /// `special` names replaced by what it returns.
    private static func escaping(_ path: [UInt8], special: (UInt8) -> String?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(path.count + 8)
        var i = 0
        while i < path.count {
            if path[i] < 0x80, let replacement = special(path[i]) {
                out += Array(replacement.utf8)
                i += 1
            } else if let n = utf8SequenceLength(path, at: i) {
                out += path[i..<i + n]
                i += n
            } else {
                out += Array(("%" + hex2(path[i])).utf8)
                i += 1
            }
        }
        return out
    }

    /// A schema or table name as a file name component: `/`, `%` and control characters as `%XX`
    /// (the name itself is UTF-8, the server's encoding for the export).
    static func fileComponent(_ name: String) -> String {
        var out: [UInt8] = []
        for b in name.utf8 {
            if b == UInt8(ascii: "/") || b == UInt8(ascii: "%") || b < 0x20 || b == 0x7F {
                out += Array(("%" + hex2(b)).utf8)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
