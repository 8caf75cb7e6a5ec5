import ArgumentParser
import Foundation
import TresorCore
import TresorEngine

/// The one place where outcomes and errors become process exit codes (DESIGN.md):
///
/// | code | meaning |
/// | --- | --- |
/// | 0 | done, nothing wrong |
/// | 1 | the job failed (I/O, server, store) |
/// | 2 | bad usage, bad configuration, or bad input |
/// | 3 | done, and it found a problem |
/// | 4 | another run holds the lock; nothing was done |
/// | 128 | `pg wal-fetch` only: the WAL file could not be read; PostgreSQL must stop recovery |
public enum ExitCodes {
    public static let ok: Int32 = 0
    public static let failed: Int32 = 1
    public static let usage: Int32 = 2
    public static let problemFound: Int32 = 3
    public static let locked: Int32 = 4

    public static func code(for outcome: Outcome) -> Int32 {
        switch outcome {
        case .ok: return ok
        case .problemFound: return problemFound
        }
    }

    public static func code(for kind: FailureKind) -> Int32 {
        switch kind {
        case .usage: return usage
        case .failed: return failed
        case .locked: return locked
        }
    }

    /// Any error: Tresor's own by kind; the argument parser's usage errors as 2 (not its 64).
    public static func code(for error: Error) -> Int32 {
        // restore_command: any status below 126 would make PostgreSQL end recovery early.
        if error is WALFetchAbort { return WALFetchAbort.exitStatus }
        if let f = error as? any TresorFailure { return code(for: f.kind) }
        if error is ValidationError { return usage }
        if error is CleanExit { return ok }
        if error is DecodingError || error is EncodingError { return failed }
        return failed
    }
}
