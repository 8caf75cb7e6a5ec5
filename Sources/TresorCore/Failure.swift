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
    /// The error underneath, when this one was raised because of another (the CLI prints it as
    /// `caused by:`); nil by default.
    var cause: (any Error)? { get }
}

extension TresorFailure {
    public var description: String { message }
    public var cause: (any Error)? { nil }
}

/// The general error for Core-level problems (configuration, policy, input parsing): its code
/// is the kind of failure itself.
public typealias CoreError = TresorError<FailureKind>

extension FailureKind: FailureCode {
    public var kind: FailureKind { self }
}

extension CoreError {
    public static func usage(_ message: String, hint: String? = nil, cause: (any Error)? = nil) -> CoreError {
        CoreError(.usage, message, hint: hint, cause: cause)
    }

    public static func failed(_ message: String, hint: String? = nil, cause: (any Error)? = nil) -> CoreError {
        CoreError(.failed, message, hint: hint, cause: cause)
    }
}

/// What a module's error codes share: each code says which kind of failure it is.
public protocol FailureCode: Sendable {
    var kind: FailureKind { get }
}

/// The one shape of Tresor's errors: a code from the module's own enum (``FailureCode``), a
/// message, a hint, and the error underneath. Each module names its own with a typealias
/// (`typealias StoreError = TresorError<StoreErrorCode>`), so `catch let e as StoreError` and
/// `e.code == .notFound` read as before; constructors for common cases live in an extension
/// of that typealias.
public struct TresorError<C: FailureCode>: TresorFailure {
    public typealias Code = C

    public let code: Code
    public let message: String
    public let hint: String?
    public let cause: (any Error)?

    public var kind: FailureKind { code.kind }

    public init(_ code: Code, _ message: String, hint: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
        self.cause = cause
    }
}

/// Two errors are equal when code, message and hint are; causes are not compared (errors in
/// general are not equatable).
extension TresorError: Equatable where C: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        a.code == b.code && a.message == b.message && a.hint == b.hint
    }
}

/// The messages of an error and of every cause underneath it, outermost first: what the CLI
/// prints as `error: …` and `  caused by: …` lines. Stops at 16 levels, which no real chain
/// reaches, so a cause that points back at itself cannot loop.
public func failureChain(_ error: any Error) -> [String] {
    var messages: [String] = []
    var next: (any Error)? = error
    while let e = next, messages.count < 16 {
        if let f = e as? any TresorFailure {
            messages.append(f.message)
            next = f.cause
        } else {
            messages.append("\(e)")
            next = nil
        }
    }
    return messages
}

/// How a job that ran to its end came out.
public enum Outcome: String, Sendable, Codable {
    /// Done, nothing wrong (exit 0).
    case ok
    /// Done, and it found a problem: integrity failure, drill failed, control overdue,
    /// residual data found (exit 3).
    case problemFound = "problem_found"
}
