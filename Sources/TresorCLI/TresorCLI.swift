import ArgumentParser
internal import CPosix
import Foundation
import Logging
import TresorCore
import TresorEngine
import TresorStore

/// The `tresor` command line: argument parsing, output formatting and the exit-code map.
public enum TresorCLI {
    /// Runs the command line and exits with the code from ``ExitCodes``.
    public static func main() -> Never {
        // Nothing this process creates is for other users (keys, catalog, spools, restored
        // files get their modes set explicitly where others need them).
        umask(0o077)
        if tresor_disable_core_dumps() != 0 {
            let reason = String(cString: strerror(errno))
            exit(
                report(
                    CoreError.failed("cannot turn off core dumps (\(reason)); refusing to handle keys in a process that may dump them"),
                    json: CommandLine.arguments.contains("--json")))
        }
        exit(run(arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment))
    }

    /// Parses and runs one command line; returns the exit code.
    public static func run(arguments: [String], environment: [String: String]) -> Int32 {
        let options: GlobalOptions
        let rest: [String]
        do {
            (options, rest) = try GlobalOptions.extract(from: arguments)
        } catch {
            return report(error, json: arguments.contains("--json"))
        }
        let context = Context(options: options, environment: environment)
        Context.current = context
        let logger: Logger?
        do {
            logger = try Logs.logger(options: options, environment: environment, context: context)
        } catch {
            return report(error, json: options.json)
        }
        var command: ParsableCommand
        do {
            command = try Tresor.parseAsRoot(rest)
        } catch {
            let code = Tresor.exitCode(for: error)
            if code == .success {
                print(Tresor.fullMessage(for: error))
                return ExitCodes.ok
            }
            let message = Tresor.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
            return report(
                CoreError.usage(
                    message.replacingOccurrences(of: "Error: ", with: "").lowercasedFirst,
                    hint: usageHint(rest)),
                json: options.json)
        }
        defer { writeStoreStatistics(environment, traffic: context.traffic) }
        logger?.info("command started", metadata: ["command": "\(rest.prefix(2).joined(separator: " "))"])
        do {
            try command.run()
            let code = context.exitOverride ?? ExitCodes.code(for: context.outcome)
            if let logger { Logs.finished(logger, context: context, code: code, error: nil) }
            return code
        } catch {
            if let logger { Logs.finished(logger, context: context, code: ExitCodes.code(for: error), error: error) }
            context.endProgress()
            if !(error is any TresorFailure) {
                // The parser's own outcomes (help requested, validation) surface from run().
                let code = Tresor.exitCode(for: error)
                if code == .success {
                    print(Tresor.fullMessage(for: error))
                    return ExitCodes.ok
                }
                if code == .validationFailure {
                    let message = Tresor.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
                    return report(
                        CoreError.usage(message.replacingOccurrences(of: "Error: ", with: "").lowercasedFirst),
                        json: options.json)
                }
            }
            return report(error, json: options.json)
        }
    }

    /// The hint after a line the parser refused: the help of the command it named, or the
    /// overall help when its first word names no command (`tresor help WORD` would fail too).
    static func usageHint(_ arguments: [String]) -> String {
        guard let first = arguments.first,
            Tresor.configuration.subcommands.contains(where: { $0._commandName == first })
        else { return "tresor --help" }
        return "tresor help \(first)"
    }

    /// Prints an error (one line, a `caused by:` line per cause underneath it, then a hint line)
    /// and returns its exit code.
    static func report(_ error: Error, json: Bool) -> Int32 {
        let view = ErrorView(error)
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            if let d = try? e.encode(view) { print(String(decoding: d, as: UTF8.self)) }
        }
        FileHandle.standardError.write(Data(view.text.utf8))
        return view.exitCode
    }
}

/// An error as `--json` prints it: `exit_code` is a number, as scripts compare it.
/// `caused_by` lists the causes underneath, outermost first (absent when there are none).
struct ErrorView: Encodable {
    var error: String
    var causedBy: [String]?
    var hint: String?
    var exitCode: Int32

    enum CodingKeys: String, CodingKey {
        case error, hint
        case causedBy = "caused_by"
        case exitCode = "exit_code"
    }

    init(_ error: Error) {
        exitCode = ExitCodes.code(for: error)
        if let f = error as? any TresorFailure {
            hint = f.hint
        }
        if let v = error as? ValidationError {
            self.error = v.message
        } else {
            let chain = failureChain(error)
            self.error = chain[0]
            causedBy = chain.count > 1 ? Array(chain.dropFirst()) : nil
        }
    }

    /// What standard error gets: `error:`, then `  caused by:` lines, then `hint:`.
    var text: String {
        var text = "error: \(error)\n"
        for cause in causedBy ?? [] { text += "  caused by: \(cause)\n" }
        if let hint { text += "hint: \(hint)\n" }
        return text
    }
}

/// With `TRESOR_STORE_STATS=FILE`, writes the S3 requests this command sent to FILE as JSON
/// (benchmarks count requests per backed-up GiB with it; tests check that a refused job sent none).
func writeStoreStatistics(_ environment: [String: String], traffic: StoreTraffic) {
    guard let path = environment["TRESOR_STORE_STATS"], !path.isEmpty else { return }
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    if let data = try? e.encode(traffic.current) { try? data.write(to: URL(fileURLWithPath: path)) }
}

extension String {
    var lowercasedFirst: String { prefix(1).lowercased() + dropFirst() }
}

struct Tresor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tresor",
        abstract: "Backup, restore and retention for many tenants' databases and documents.",
        discussion: """
            Global options (anywhere on the line): --home DIR (else TRESOR_HOME), --config FILE,
            --json (machine-readable output), --now TIME (the clock, else TRESOR_NOW).
            Exit codes: 0 ok, 1 failed, 2 bad usage or input, 3 found a problem, 4 locked.
            """,
        subcommands: [
            InitCommand.self, StoreCommand.self, TenantCommand.self, RegionCommand.self,
            DocsCommand.self, SnapshotsCommand.self, CheckCommand.self, RepairCommand.self, ReplicateCommand.self, PGCommand.self,
            EvidenceCommand.self,
            KeysCommand.self, DrillCommand.self, ExportCommand.self, DeletionCommand.self, SweepCommand.self,
            RetentionCommand.self, JobsCommand.self, MetricsCommand.self, TickCommand.self, ServeCommand.self,
            CatalogCommand.self,
        ])
}
