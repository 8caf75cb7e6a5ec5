import Foundation
import Logging
import TresorCatalog
import TresorCore
import TresorEngine
import TresorPostgres

/// Removes secrets from text before it is logged: the values it was told about (the master key
/// file's text, AWS and PostgreSQL secrets from the environment) and anything shaped like a
/// password in a DSN or URL, or a signed link's signature.
struct Redactor: Sendable {
    private(set) var secrets: [String] = []
    static let mask = "[redacted]"

    mutating func add(_ secret: String?) {
        guard let s = secret?.trimmingCharacters(in: .whitespacesAndNewlines), s.count >= 4 else { return }
        secrets.append(s)
    }

    private static let patterns: [NSRegularExpression] = [
        #"(password\s*=\s*)('[^']*'|[^\s&]+)"#,  // key=value DSNs and query strings
        #"([a-z][a-z0-9+.-]*://[^/:@\s]+:)[^@\s/]+(@)"#,  // user:password@ in URLs
        #"((?:X-Amz-Signature|X-Amz-Security-Token|Signature|sig)=)[^&\s"]+"#,
    ].map { try! NSRegularExpression(pattern: $0, options: [.caseInsensitive]) }  // literals, checked by tests

    func scrub(_ text: String) -> String {
        var out = text
        for s in secrets where out.contains(s) { out = out.replacingOccurrences(of: s, with: Self.mask) }
        for p in Self.patterns {
            let range = NSRange(out.startIndex..., in: out)
            let template = p.numberOfCaptureGroups == 2 ? "$1\(Self.mask)$2" : "$1\(Self.mask)"
            out = p.stringByReplacingMatches(in: out, range: range, withTemplate: template)
        }
        return out
    }
}

/// Where log lines go: standard error or a file opened for appending; one write per line, under a lock.
final class LogSink: @unchecked Sendable {
    // @unchecked: `handle` is only written to while `lock` is held.
    private let lock = NSLock()
    private let handle: FileHandle

    init(file: String?) throws {
        guard let file else { handle = .standardError; return }
        if !FileManager.default.fileExists(atPath: file) {
            guard FileManager.default.createFile(atPath: file, contents: nil) else {
                throw CoreError.usage("cannot create the log file \(file)", hint: "check --log-file's directory")
            }
        }
        guard let h = FileHandle(forWritingAtPath: file) else {
            throw CoreError.usage("cannot open the log file \(file) for writing", hint: "check its permissions")
        }
        h.seekToEndOfFile()
        handle = h
    }

    func write(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        handle.write(Data((line + "\n").utf8))
    }
}

/// One JSON object per line: `time`, `level`, `message`, then `job`, `tenant` and `run` when the
/// event's metadata has them, and the rest of the metadata under `metadata`. Every string passes
/// through the ``Redactor``.
struct JSONLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    let sink: LogSink
    let redactor: Redactor

    init(level: Logger.Level, sink: LogSink, redactor: Redactor) {
        logLevel = level
        self.sink = sink
        self.redactor = redactor
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { _, new in new } }
        if let error = event.error { all["error"] = "\(error)" }
        var object: [String: Any] = [
            "time": TimeFormat.string(Date(), fractional: true),
            "level": event.level.rawValue,
            "message": redactor.scrub(event.message.description),
        ]
        for key in ["job", "tenant", "run"] {
            if let v = all.removeValue(forKey: key) { object[key] = plain(v) }
        }
        if !all.isEmpty { object["metadata"] = all.mapValues(plain) }
        // Every value is a string, array or dictionary of them, so serialisation should not fail;
        // if it ever does, the log says so instead of losing the event without a trace.
        do {
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            sink.write(String(decoding: data, as: UTF8.self))
        } catch {
            sink.write(#"{"level":"error","message":"a log event could not be written as JSON"}"#)
        }
    }

    private func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): return redactor.scrub(s)
        case .stringConvertible(let c): return redactor.scrub(c.description)
        case .array(let a): return a.map(plain)
        case .dictionary(let d): return d.mapValues(plain)
        }
    }
}

enum Logs {
    /// The secrets of this process that a log line must never show. `opener` is the home's
    /// config (nil when it cannot be read: the command fails on that same config and reports it,
    /// and then no secret of the config is known to hide).
    static func redactor(environment: [String: String], opener: HomeOpener?) -> Redactor {
        var r = Redactor()
        for key in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD"] { r.add(environment[key]) }
        guard let opener else { return r }
        // The fleet catalog's DSN password, from the config alone: an unreachable catalog is
        // exactly when its DSN shows up in errors. A DSN libpq cannot parse holds no password it
        // could send, and errors print such a DSN only as "(a connection string libpq cannot read)".
        if let dsn = opener.config.catalogDSN { r.add((try? ConnInfo(dsn))?.password) }
        if case .file(let path) = opener.config.masterKey {
            // Unreadable key file: the command itself fails on it and says so; nothing to hide then.
            r.add(try? String(contentsOf: opener.home.path(path), encoding: .utf8))
        }
        return r
    }

    /// Logs one event per job run this process recorded, with its job kind, tenant and run id.
    static func logRuns(_ logger: Logger, installation: Installation) {
        let jobs: [JobRun]
        do {
            jobs = try installation.jobsOfThisProcess()
        } catch {
            logger.error("cannot read this process's runs from the catalog", metadata: ["error": "\(error)"])
            return
        }
        for job in jobs.reversed() {
            var meta: Logger.Metadata = ["job": "\(job.kind)", "run": "\(job.id)", "result": "\(job.result)"]
            if let t = job.tenant { meta["tenant"] = "\(t)" }
            if let b = job.bytes { meta["bytes"] = "\(b)" }
            if let d = job.durationSeconds { meta["seconds"] = "\(d)" }
            if let e = job.error { meta["error"] = "\(e)" }
            let level: Logger.Level = job.result == RunStatus.ok.rawValue ? .info : (job.result == RunStatus.running.rawValue ? .warning : .error)
            logger.log(level: level, "job run \(job.result)", metadata: meta)
        }
    }
}

extension Logs {
    /// The process's logger, or `nil` when neither `--log-level` nor `--log-file` (nor
    /// TRESOR_LOG_LEVEL) asks for logs: human output stays uncluttered by default.
    static func logger(options: GlobalOptions, environment: [String: String], context: Context) throws -> Logger? {
        let levelText = options.logLevel ?? environment["TRESOR_LOG_LEVEL"]
        guard levelText != nil || options.logFile != nil else { return nil }
        guard let level = Logger.Level(rawValue: levelText ?? "info") else {
            throw CoreError.usage(
                "unknown log level '\(levelText ?? "")'",
                hint: "use one of " + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let sink = try LogSink(file: options.logFile)
        // Only the config is read here (no catalog is opened). Without one (before `init`, or a
        // broken config the command will report with its exit code) only the environment's
        // secrets are known; the patterns still apply.
        let redactor = redactor(environment: environment, opener: try? HomeOpener(home: context.home, configFile: context.configFile))
        var logger = Logger(label: "tresor") { _ in JSONLogHandler(level: level, sink: sink, redactor: redactor) }
        logger.logLevel = level
        return logger
    }

    static func finished(_ logger: Logger, context: Context, code: Int32, error: Error?) {
        do {
            logRuns(logger, installation: try context.installation())
        } catch {
            // The command's own result (its exit code) stands; the log says why its runs are missing.
            logger.warning(
                "this process's job runs are not logged: the installation cannot be opened",
                metadata: ["error": "\((error as? any TresorFailure)?.message ?? "\(error)")"])
        }
        if let error {
            let message = (error as? any TresorFailure)?.message ?? "\(error)"
            logger.error("command failed", metadata: ["exit": "\(code)", "error": "\(message)"])
        } else {
            logger.info("command finished", metadata: ["exit": "\(code)"])
        }
    }
}
