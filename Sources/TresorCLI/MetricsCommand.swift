import ArgumentParser
import Foundation
import TresorEngine

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Write the Prometheus text-format file for node_exporter's textfile collector (atomically).")
    @Option(help: "The file to write, e.g. /var/lib/node_exporter/textfile/tresor.prom.") var out: String

    func run() throws {
        let r = try ctx.installation().writeMetrics(to: out)
        ctx.emit(r, outcome: r.outcome) {
            (["wrote \(r.samples) samples for \(r.tenants) tenants to \(r.path)"]
                + r.failures.map { "could not read \($0)" }).joined(separator: "\n")
        }
    }
}
