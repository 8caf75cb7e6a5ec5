import Foundation
import TresorCore

/// What a recorded run did. Stored as its raw value; a row with a kind this build does not know
/// is reported as a damaged catalog, never read as another kind.
public enum RunKind: String, Sendable, Codable, CaseIterable {
    case documentsBackup = "docs-backup"
    case documentsRestore = "docs-restore"
    case documentsDump = "docs-dump"
    case postgresBaseBackup = "pg-basebackup"
    case postgresRestore = "pg-restore"
    case postgresStream = "pg-stream"
    case check
    case replicate
    case storeClean = "store-clean"
    case keyRotation = "key-rotation"
    case repairIndex = "repair-index"
    case repairSnapshots = "repair-snapshots"
    case drill
    case tick
    /// The drill-age control (`drill status`) as `tick` runs it daily.
    case drillControl = "drill-control"
    case retention
    case deletion
    case sweep
    case export
}

/// How a recorded run stands. The catalog's `runs.status` column accepts only these values
/// (schema version 2).
public enum RunStatus: String, Sendable, Codable, CaseIterable {
    /// Started and not finished (or the process died before it could record the end).
    case running
    case ok
    /// Done, and it found a problem (exit 3).
    case problemFound = "problem_found"
    case failed

    /// The status of a run that ran to its end with `outcome`.
    public init(_ outcome: Outcome) {
        switch outcome {
        case .ok: self = .ok
        case .problemFound: self = .problemFound
        }
    }
}

extension Catalog {
    /// ``Catalog/startRun(kind:tenant:at:)`` for callers that still name the kind as text;
    /// text that is no ``RunKind`` is refused (`.invalid`) rather than stored.
    public func startRun(kind: String, tenant: String?, at: Date) throws -> Int64 {
        guard let k = RunKind(rawValue: kind) else {
            throw CatalogError(.invalid, "unknown run kind '\(kind)'")
        }
        return try startRun(kind: k, tenant: tenant, at: at)
    }

    /// ``Catalog/finishRun(id:at:status:detail:)`` for callers that still name the status as
    /// text; text that is no ``RunStatus`` is refused (`.invalid`) rather than stored.
    public func finishRun(id: Int64, at: Date, status: String, detail: String) throws {
        guard let s = RunStatus(rawValue: status) else {
            throw CatalogError(.invalid, "unknown run status '\(status)' for run \(id)")
        }
        try finishRun(id: id, at: at, status: s, detail: detail)
    }
}
