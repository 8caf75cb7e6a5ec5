import Foundation
import Testing
import TresorCore
import TresorDocuments
import TresorRepository
import TresorStore
import TresorTestSupport

@Suite struct RestoreSafetyTests {
    @Test(arguments: ["../evil", "/etc/passwd", "docs/../../evil", "docs//x", "docs/./x", "", "docs/"])
    func pathsThatCouldEscapeAreRejected(path: String) {
        #expect(!DocumentRestore.isContained(path))
    }

    @Test(arguments: ["docs", "docs/a/b.txt", "docs/..hidden", "docs/a..b", "Ünïcødé/文件.txt"])
    func plainRelativePathsAreAccepted(path: String) {
        #expect(DocumentRestore.isContained(path))
    }

    @Test func aSnapshotWithAnEscapingPathRestoresNothing() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.sub("store"))
        let policy = Policy.Backup(
            compressionLevel: 3, chunkMin: 4096, chunkAvg: 16384, chunkMax: 65536,
            packTarget: 1 << 20, indexEveryPacks: 4, workers: 1, changedFileRetries: 0)
        let repo = try TenantRepository.open(
            store: store, tenant: "acme", master: .generate(), policy: policy,
            clock: SystemClock(), create: true)
        let nodes = [
            TreeNode(
                path: "docs", kind: .directory, mode: 0o755, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0,
                size: 0, device: 0, inode: 0),
            TreeNode(
                path: "docs/../../outside.txt", kind: .file, mode: 0o644, mtimeSeconds: 0, mtimeNanoseconds: 0,
                uid: 0, gid: 0, size: 0, device: 0, inode: 0),
        ]
        let target = dir.sub("target")
        #expect(throws: RepositoryError.self) {
            try DocumentRestore(repository: repo, index: RepositoryIndex()).restore(nodes: nodes, to: target.path)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.url.appendingPathComponent("outside.txt").path))
        #expect(!FileManager.default.fileExists(atPath: target.path), "nothing is created")
    }

    @Test func subpathSelectionKeepsTheSubtreeOnly() {
        func n(_ p: String) -> TreeNode {
            TreeNode(path: p, kind: .file, mode: 0, mtimeSeconds: 0, mtimeNanoseconds: 0, uid: 0, gid: 0, size: 0, device: 0, inode: 0)
        }
        let nodes = [n("docs"), n("docs/inv"), n("docs/inv/a"), n("docs/invoices"), n("docs/x")]
        #expect(DocumentRestore.select(nodes, subpath: "docs/inv").map(\.displayPath) == ["docs/inv", "docs/inv/a"])
        #expect(DocumentRestore.select(nodes, subpath: "/docs/inv/").map(\.displayPath) == ["docs/inv", "docs/inv/a"])
        #expect(DocumentRestore.select(nodes, subpath: nil).count == 5)
    }
}
