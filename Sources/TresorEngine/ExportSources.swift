import TresorCore
import TresorExport
import TresorRepository

/// The documents of one backup snapshot as an export reads them: the nodes given (a whole tree,
/// or the part an export `--since` an earlier snapshot needs), in tree order, file contents
/// streamed chunk by chunk through ``TreeReader`` (holes of sparse files as zeros), so memory does
/// not depend on file sizes. Paths start with the root's label, as in a live export. Fifos,
/// sockets and devices are reported as not exported, as the live walker does.
struct SnapshotDocumentSource: DocumentSource {
    let repository: TenantRepository
    let index: RepositoryIndex
    let nodes: [TreeNode]

    func walk(_ visit: (DocumentEntry, (any DocumentContent)?) throws -> Void) throws -> [DocumentProblem] {
        var problems: [DocumentProblem] = []
        let reader = try TreeReader(repository: repository, index: index)
        try reader.forEach(nodes) { node, content in
            let mode = node.mode & 0o7777
            let nanos = Int(node.mtimeNanoseconds)
            switch node.kind {
            case .directory:
                try visit(DocumentEntry(path: node.pathBytes, kind: .directory, mode: mode, mtime: node.mtimeSeconds, mtimeNanos: nanos), nil)
            case .file:
                guard let content else { throw CoreError.failed("\(node.displayPath): the tree reader gave no content for a file") }
                try visit(
                    DocumentEntry(path: node.pathBytes, kind: .file(size: Int64(node.size)), mode: mode, mtime: node.mtimeSeconds, mtimeNanos: nanos),
                    SnapshotFileContent(content))
            case .symlink:
                try visit(
                    DocumentEntry(
                        path: node.pathBytes, kind: .symlink(target: node.linkTargetBytes), mode: mode, mtime: node.mtimeSeconds,
                        mtimeNanos: nanos), nil)
            case .fifo, .socket, .characterDevice, .blockDevice:
                problems.append(
                    DocumentProblem(
                        path: node.displayPath,
                        reason: "not a regular file, folder or symbolic link (\(node.kind)): not exported"))
            }
        }
        return problems
    }
}

/// One file of a snapshot, pulled into the export's buffer.
final class SnapshotFileContent: DocumentContent {
    let content: FileContent
    init(_ content: FileContent) { self.content = content }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try content.read(into: buffer) }
}
