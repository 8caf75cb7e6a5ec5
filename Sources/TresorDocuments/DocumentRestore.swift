import TresorCore
import TresorRepository

/// Restores a documents snapshot (or a subtree of it) into a new or empty directory.
///
/// The work is the repository's generic ``TreeRestorer`` (see there for the algorithm, its safety
/// in directories others can write to, and what happens on failure); documents add nothing to it
/// today beyond the name the Engine and the CLI use.
public final class DocumentRestore {
    public typealias Report = TreeRestorer.Report

    private let restorer: TreeRestorer

    /// `sync: false` skips flushing to disk; `progress`, when given, is called about once a second.
    public init(
        repository: TenantRepository, index: RepositoryIndex, threads: Int = 2 * availableCores, sync: Bool = true,
        progress: (@Sendable (_ bytesWritten: UInt64, _ totalBytes: UInt64) -> Void)? = nil
    ) {
        restorer = TreeRestorer(repository: repository, index: index, threads: threads, sync: sync, progress: progress)
    }

    /// Selects the nodes at `subpath` (the node itself and everything under it).
    public static func select(_ nodes: [TreeNode], subpath: String?) -> [TreeNode] { TreeRestorer.select(nodes, subpath: subpath) }

    /// True when `path` is a plain relative path that cannot leave the directory it is joined to.
    public static func isContained(_ path: String) -> Bool { TreeRestorer.isContained(path) }

    public func restore(nodes: [TreeNode], to target: String) throws -> Report {
        try restorer.restore(nodes: nodes, to: target)
    }

    /// Restores a tree read node by node, a batch at a time (see ``TreeRestorer/restore(passes:to:)``).
    public func restore(passes: () throws -> () throws -> TreeNode?, to target: String) throws -> Report {
        try restorer.restore(passes: passes, to: target)
    }
}
