import Foundation
import TresorCore
import TresorEngine
import TresorStore

/// The options every command takes, wherever they appear on the command line:
/// `--home DIR`, `--config FILE`, `--json`, `--now TIME`.
struct GlobalOptions: Sendable {
    /// The global options that take a value, and those that take none (what ``extract(from:)``
    /// removes; a hint may put them before any command).
    static let withValue: Set<String> = ["--home", "--config", "--now", "--log-level", "--log-file"]
    static let flags: Set<String> = ["--json"]

    var home: String?
    var config: String?
    var json = false
    var now: String?
    /// `--log-level LEVEL` (trace ... critical): JSON log lines on stderr or `--log-file`.
    var logLevel: String?
    var logFile: String?

    /// Removes the global options from `arguments` and returns them with the rest. Values of
    /// other options are skipped, so `--reason --json` keeps `--json` as a reason.
    static func extract(from arguments: [String]) throws -> (GlobalOptions, [String]) {
        var g = GlobalOptions()
        var rest: [String] = []
        var i = 0
        func value(_ name: String) throws -> String {
            guard i + 1 < arguments.count else {
                throw CoreError.usage("\(name) needs a value", hint: "tresor --help")
            }
            i += 1
            return arguments[i]
        }
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" {
                rest += arguments[i...]
                break
            }
            let (name, inline) =
                a.hasPrefix("--") && a.contains("=")
                ? (String(a[..<a.firstIndex(of: "=")!]), String(a[a.index(after: a.firstIndex(of: "=")!)...]))
                : (a, nil)
            switch name {
            case "--home": g.home = try inline ?? value(name)
            case "--config": g.config = try inline ?? value(name)
            case "--now": g.now = try inline ?? value(name)
            case "--log-level": g.logLevel = try inline ?? value(name)
            case "--log-file": g.logFile = try inline ?? value(name)
            case "--json": g.json = true
            default:
                rest.append(a)
                // Keep an option's value with it, so a value that looks like a global flag stays.
                if a.hasPrefix("--"), !a.contains("="), i + 1 < arguments.count, !CLIFlags.booleans.contains(a) {
                    i += 1
                    rest.append(arguments[i])
                }
            }
            i += 1
        }
        return (g, rest)
    }
}

/// Flags that take no value (so the argument after them is not swallowed as one).
enum CLIFlags {
    static let booleans: Set<String> = [
        "--help", "--read-data", "--latest", "--dry-run", "--version", "--wait", "--pem", "--current", "--pg-password-stdin",
        "--from-backup", "--long", "--recursive", "--path-only", "--ignore-case", "--no-sync", "--purge",
        "--failed", "--finish", "--publish", "--new-cluster", "--archive", "--run", "--remove", "--follow",
    ]
}

/// Everything a command needs from the process: options, environment, where output goes.
final class Context: @unchecked Sendable {
    let options: GlobalOptions
    let environment: [String: String]
    private(set) var outcome: Outcome = .ok
    /// Set by a command whose output is printed but whose jobs partly failed (`tick`: exit 1).
    var exitOverride: Int32?

    nonisolated(unsafe) static var current: Context!
    /// The S3 requests this command's stores sent (`TRESOR_STORE_STATS`).
    let traffic = StoreTraffic()

    init(options: GlobalOptions, environment: [String: String]) {
        self.options = options
        self.environment = environment
    }

    /// `--now`, else `TRESOR_NOW`, else the system clock.
    func clock() throws -> any Clock {
        guard let text = options.now ?? environment["TRESOR_NOW"], !text.isEmpty else { return SystemClock() }
        guard let date = TimeFormat.parse(text) else {
            throw CoreError.usage("cannot read time '\(text)'", hint: "use RFC 3339, e.g. 2026-11-27T10:00:00Z")
        }
        return FixedClock(date)
    }

    var home: Home { Home.resolve(flag: options.home, environment: environment) }

    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, when both are set.
    var s3Credentials: S3Credentials? {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
            let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        else { return nil }
        return S3Credentials(accessKeyID: id, secretAccessKey: secret)
    }

    var configFile: URL? { (options.config ?? environment["TRESOR_CONFIG"]).map { URL(fileURLWithPath: $0) } }

    func installation() throws -> Installation {
        try HomeOpener(home: home, configFile: configFile).installation(clock: try clock(), s3Credentials: s3Credentials, traffic: traffic)
    }

    /// Prints a result: JSON on one line with `--json`, else the human text.
    func emit<T: Encodable>(_ value: T, outcome: Outcome = .ok, human: () -> String) {
        self.outcome = outcome
        if options.json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            e.dateEncodingStrategy = .custom { date, enc in
                var c = enc.singleValueContainer()
                try c.encode(TimeFormat.string(date, fractional: true))
            }
            if let data = try? e.encode(value) { print(String(decoding: data, as: UTF8.self)) }
        } else {
            let text = human()
            if !text.isEmpty { print(text) }
        }
    }

    /// A progress line on standard error, only when it is a terminal and output is for people.
    func progress(_ line: String) {
        guard !options.json, isatty(2) != 0 else { return }
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    }

    func endProgress() {
        guard !options.json, isatty(2) != 0 else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
