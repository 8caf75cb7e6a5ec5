/// What kind of failure an error is, which decides the process exit code.
///
/// Every module's error type conforms to ``TresorFailure`` and names one of these; the CLI maps
/// them to exit codes in one place (`ExitCodes.swift`). "Found a problem" is not a failure: it is
/// an ``Outcome`` value returned by the job.
public enum FailureKind: String, Sendable, Codable {
    /// Bad usage, bad configuration or bad input: the user can fix it (exit 2).
    case usage
    /// The job failed: I/O, server, store (exit 1).
    case failed
    /// Another run holds the lock; nothing was done (exit 4).
    case locked
}

/// An error Tresor reports to its user: a one-line message saying what failed, an optional hint
/// saying how to fix it, and the underlying cause. Messages never contain secrets.
public protocol TresorFailure: Error, CustomStringConvertible, Sendable {
    var kind: FailureKind { get }
    /// Lowercase, no final period: `tenant 'acme' has no document roots`.
    var message: String { get }
    /// A command or setting that fixes the problem, when there is one.
    var hint: String? { get }
}

extension TresorFailure {
    public var description: String { message }
}

/// The general error for Core-level problems (configuration, policy, input parsing).
public struct CoreError: TresorFailure {
    public let kind: FailureKind
    public let message: String
    public let hint: String?

    public init(_ kind: FailureKind, _ message: String, hint: String? = nil) {
        self.kind = kind
        self.message = message
        self.hint = hint
    }

    public static func usage(_ message: String, hint: String? = nil) -> CoreError {
        CoreError(.usage, message, hint: hint)
    }

    public static func failed(_ message: String, hint: String? = nil) -> CoreError {
        CoreError(.failed, message, hint: hint)
    }
}

/// How a job that ran to its end came out.
public enum Outcome: String, Sendable, Codable {
    /// Done, nothing wrong (exit 0).
    case ok
    /// Done, and it found a problem: integrity failure, drill failed, control overdue,
    /// residual data found (exit 3).
    case problemFound = "problem_found"
}
