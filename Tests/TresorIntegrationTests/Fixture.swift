import Foundation
import Testing
import TresorTestSupport

/// A fresh home with a local store and one tenant whose documents are a generated corpus.
final class Fixture: @unchecked Sendable {
    let dir = TempDirectory("tresor-it")
    let tresor: TresorProcess
    var home: String { dir.sub("home").path }
    var storePath: String { dir.sub("store").path }
    var docs: URL { dir.sub("docs") }

    init(tenant: String = "acme", corpus: CorpusBuilder.Options = CorpusBuilder.Options()) throws {
        tresor = TresorProcess(home: dir.sub("home").path)
        try CorpusBuilder.build(at: dir.sub("docs"), options: corpus)
        try expectOK(["init"])
        try expectOK(["store", "add", "local", "--url", "file://" + storePath, "--region", "eu-central"])
        try expectOK(["tenant", "add", tenant, "--region", "eu-central", "--store", "local", "--docs", docs.path])
    }

    @discardableResult
    func expectOK(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> TresorProcess.Result {
        let r = try tresor.run(args)
        #expect(r.code == 0, "tresor \(args.joined(separator: " ")) exited \(r.code): \(r.stderr)", sourceLocation: sourceLocation)
        return r
    }

    /// Restores `selector` into a new directory and returns the restored root for `label`.
    func restore(_ selector: String = "latest", extra: [String] = []) throws -> (URL, TresorProcess.Result) {
        let target = dir.sub("restore-\(UUID().uuidString.prefix(6))")
        let r = try tresor.run(["docs", "restore", "acme", "--to", target.path, "--snapshot", selector] + extra)
        return (target.appendingPathComponent("docs"), r)
    }

    func packs() -> [String] { storedPacks(storePath) }
}

/// The pack objects of tenant acme in a local store, sorted.
func storedPacks(_ storePath: String) -> [String] {
    let e = FileManager.default.enumerator(atPath: storePath + "/tenants/acme/data")
    var out: [String] = []
    while let p = e?.nextObject() as? String {
        if p.count > 3 { out.append(storePath + "/tenants/acme/data/" + p) }
    }
    return out.sorted()
}

/// Waits until `process` holds `tenant`'s lock in `home` (its pid is in the lock file), or has
/// exited; a job started after this meets the lock.
func waitUntilLockHeld(home: String, tenant: String = "acme", by process: Process) {
    let lockFile = home + "/locks/\(tenant).lock"
    while process.isRunning,
        (try? String(contentsOfFile: lockFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) != "\(process.processIdentifier)"
    {
        usleep(10_000)
    }
}
