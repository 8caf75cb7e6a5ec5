import TresorCore

/// What a snapshot holds. Stored in the manifest (and in run results) as its raw value, which
/// is part of the repository format and never changes.
///
/// A manifest naming a kind this build does not know was written by a newer Tresor (the
/// manifest is authenticated, so it is not damage): reading it throws a ``RepositoryError``
/// with code `failed`, never falls back to another kind or skips the snapshot.
public enum SnapshotKind: String, Sendable, CaseIterable {
    /// A tree of uploaded documents (`docs backup`).
    case documents
    /// A PostgreSQL base backup (`pg basebackup`); its manifest carries ``PostgresBackupInfo``.
    case postgresBase = "pg-base"

    /// Reads `text` as a kind, throwing the error above when it is none.
    public init(parsing text: String) throws {
        guard let kind = SnapshotKind(rawValue: text) else {
            throw RepositoryError(
                .failed, "unknown snapshot kind '\(text)' (this build knows \(Self.allCases.map(\.rawValue).joined(separator: ", ")))",
                hint: "run a Tresor release at least as new as the one that wrote it")
        }
        self = kind
    }
}

extension SnapshotKind: Codable {
    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}
