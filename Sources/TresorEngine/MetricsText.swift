import Foundation
import Prometheus
import TresorCore

/// A Prometheus text-format document for node_exporter's textfile collector: gauges only, each
/// family with its HELP and TYPE lines. The values are read out of the catalog once per `tick`
/// or `tresor metrics`; swift-prometheus's registry renders them (names, label escaping,
/// numbers), and ``write(to:)`` puts the file in place atomically.
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

    /// The document's text, as swift-prometheus emits it.
    public var text: String {
        let registry = PrometheusCollectorRegistry()
        for f in families {
            for s in f.samples {
                registry.makeGauge(descriptor: MetricNameDescriptor(metricName: f.name, unitName: "", helpText: f.help), labels: s.labels).set(s.value)
            }
        }
        return registry.emitToString()
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
