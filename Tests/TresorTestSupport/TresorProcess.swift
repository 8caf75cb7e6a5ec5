import Foundation

/// Runs the built `tresor` binary the way cron or an operator would.
public struct TresorProcess: Sendable {
    public struct Result: Sendable {
        public var code: Int32
        public var stdout: String
        public var stderr: String

        public func json() -> [String: Any]? {
            guard let line = stdout.split(separator: "\n").last,
                let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else { return nil }
            return obj
        }

        public func jsonArray() -> [[String: Any]]? {
            guard let line = stdout.split(separator: "\n").last else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [[String: Any]]
        }
    }

    public let home: String
    public var environment: [String: String] = [:]

    public init(home: String) { self.home = home }

    /// The binary next to the test bundle (`swift build` puts both in the same directory), or
    /// `TRESOR_BIN`.
    public static var binary: String {
        if let b = ProcessInfo.processInfo.environment["TRESOR_BIN"] { return b }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("tresor")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            dir = dir.deletingLastPathComponent()
        }
        let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../.build/debug/tresor").standardizedFileURL.path
        return fallback
    }

    /// Runs `tresor --home HOME args…` to completion.
    @discardableResult
    public func run(_ args: [String], stdin: String? = nil) throws -> Result {
        let p = start(args)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let input = stdin.map { _ in Pipe() }
        if let input { p.standardInput = input } else { p.standardInput = FileHandle.nullDevice }
        try p.run()
        if let input, let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }
        // Drain both pipes while the process runs so a chatty process cannot block.
        let outData = Locked2<Data>(Data()), errData = Locked2<Data>(Data())
        let g = DispatchGroup()
        g.enter()
        DispatchQueue.global().async {
            outData.set(out.fileHandleForReading.readDataToEndOfFile())
            g.leave()
        }
        g.enter()
        DispatchQueue.global().async {
            errData.set(err.fileHandleForReading.readDataToEndOfFile())
            g.leave()
        }
        p.waitUntilExit()
        g.wait()
        return Result(
            code: p.terminationStatus, stdout: String(decoding: outData.get(), as: UTF8.self),
            stderr: String(decoding: errData.get(), as: UTF8.self))
    }

    /// A configured, not yet started process (for tests that kill it mid-way).
    public func start(_ args: [String]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = ["--home", home] + args
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "TRESOR_HOME")
        env.removeValue(forKey: "TRESOR_NOW")
        for (k, v) in environment { env[k] = v }
        p.environment = env
        return p
    }
}

final class Locked2<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
}
