import Foundation
import TresorCore

/// A Prometheus text-format (0.0.4) document for node_exporter's textfile collector: gauges
/// only, each family with its HELP and TYPE lines, samples in the order they were added.
///
/// Our own writer rather than swift-prometheus: the file is written once per `tick` or
/// `tresor metrics` from values read out of the catalog, so no in-process registry, counters or
/// HTTP exposition is needed, and the format is a few escaping rules (see docs/operations.md).
public struct MetricsText: Sendable {
    public struct Family: Sendable {
        public var name: String
        public var help: String
        public var samples: [(labels: [(String, String)], value: Double)] = []
    }

    private(set) var families: [Family] = []
    private var indexByName: [String: Int] = [:]

    public init() {}

    /// Adds one sample; the family is created (with `help`) the first time its name is seen.
    public mutating func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
        let i: Int
        if let existing = indexByName[name] {
            i = existing
        } else {
            i = families.count
            indexByName[name] = i
            families.append(Family(name: name, help: help))
        }
        families[i].samples.append((labels, value))
    }

    /// The document's text, ending with a newline.
    public var text: String {
        var out = ""
        for f in families {
            out += "# HELP \(f.name) \(Self.escapeHelp(f.help))\n# TYPE \(f.name) gauge\n"
            for s in f.samples {
                out += f.name
                if !s.labels.isEmpty {
                    out += "{" + s.labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
                }
                out += " " + Self.number(s.value) + "\n"
            }
        }
        return out
    }

    static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeLabel(_ s: String) -> String {
        escapeHelp(s).replacingOccurrences(of: "\"", with: "\\\"")
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    /// Writes the document to `path` atomically: a temporary file in the same directory, flushed,
    /// made readable by node_exporter (0644; the process's umask is 077), then renamed over `path`.
    /// The collector never sees a half-written file.
    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let temp = dir + "/." + url.lastPathComponent + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        let data = Data(text.utf8)
        guard FileManager.default.createFile(atPath: temp, contents: nil, attributes: [.posixPermissions: 0o644]) else {
            throw CoreError.failed("cannot create \(temp) (does \(dir) exist and is it writable?)")
        }
        do {
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: temp))
            defer { try? h.close() }  // closing after a completed synchronize cannot lose data
            try h.write(contentsOf: data)
            try h.synchronize()
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: temp)
            guard rename(temp, path) == 0 else {
                throw CoreError.failed("cannot rename \(temp) to \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            // The temporary file is ours and incomplete; removing it loses nothing.
            try? FileManager.default.removeItem(atPath: temp)
            throw error
        }
    }
}
