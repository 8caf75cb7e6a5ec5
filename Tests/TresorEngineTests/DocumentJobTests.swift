import Foundation
import Testing
import TresorCatalog
import TresorCore
import TresorEngine
import TresorTestSupport

/// Jobs run as values through the Engine, without the binary: a document backup and its
/// restore on a real home and a local store, each recorded by the one run recorder, and a
/// restore that fails recorded as failed, not left running or missing.
@Suite struct DocumentJobTests {
    static func home() throws -> (TempDirectory, Installation) {
        let dir = TempDirectory("tresor-engine-job")
        let home = Home(root: dir.sub("home"))
        _ = try Installation.initialize(home: home, configFile: nil)
        let inst = try Installation.open(home: home, configFile: nil, clock: SystemClock())
        _ = try inst.addStore(name: "local", url: "file://" + dir.sub("store").path, region: "eu-central")
        return (dir, inst)
    }

    /// Relative path → content, written under `root`.
    static let files: [String: [UInt8]] = [
        "one.txt": Array("first line\n".utf8),
        "sub/deeper/two.bin": (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) },
        "sub/empty": [],
    ]

    @Test func aBackupAndItsRestoreRunAsJobsAndAreRecordedWithWhatTheyMoved() throws {
        let (dir, inst) = try Self.home()
        let docs = dir.sub("docs")
        for (path, bytes) in Self.files {
            let url = docs.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        _ = try inst.addTenant(name: "acme", region: "eu-central", store: "local", docs: [docs.path], pgDSN: nil)

        let backup = try inst.backupDocuments(tenant: "acme")
        #expect(backup.outcome == .ok)
        #expect(backup.filesRead == Self.files.count)
        #expect(backup.bytesRead == UInt64(Self.files.values.reduce(0) { $0 + $1.count }))
        #expect(backup.skipped.isEmpty)

        let target = dir.sub("restored")
        let restore = try inst.restoreDocuments(tenant: "acme", to: target.path, snapshot: "latest", paths: [], by: "test")
        #expect(restore.outcome == .ok)
        // The root comes back under its own name, each file byte for byte.
        for (path, bytes) in Self.files {
            let back = try Data(contentsOf: target.appendingPathComponent("docs").appendingPathComponent(path))
            #expect([UInt8](back) == bytes, "\(path)")
        }

        let runs = try inst.jobs(JobFilter(tenant: "acme"))
        #expect(runs.map(\.kind) == [RunKind.documentsRestore.rawValue, RunKind.documentsBackup.rawValue])
        #expect(runs.allSatisfy { $0.result == "ok" && $0.endedAt != nil && $0.error == nil })
        #expect(runs.last?.bytes == backup.bytesRead)
    }

    @Test func aRestoreWhoseStoreIsGoneIsRecordedAsAFailedRunWithItsError() throws {
        let (dir, inst) = try Self.home()
        let docs = dir.sub("docs")
        try FileManager.default.createDirectory(at: docs, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: docs.appendingPathComponent("a.txt"))
        _ = try inst.addTenant(name: "acme", region: "eu-central", store: "local", docs: [docs.path], pgDSN: nil)
        _ = try inst.backupDocuments(tenant: "acme")
        try FileManager.default.removeItem(at: dir.sub("store"))

        #expect(throws: (any Error).self) {
            try inst.restoreDocuments(tenant: "acme", to: dir.sub("restored").path, snapshot: "latest", paths: [], by: "test")
        }
        let runs = try inst.jobs(JobFilter(tenant: "acme", failedOnly: true))
        #expect(runs.count == 1)
        #expect(runs.first?.kind == RunKind.documentsRestore.rawValue)
        #expect(runs.first?.result == "failed")
        #expect(runs.first?.endedAt != nil)
        #expect((runs.first?.error ?? "").isEmpty == false)
    }
}
