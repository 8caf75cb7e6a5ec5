import Foundation
import Testing
import TresorCatalog
import TresorTestSupport

/// Every job run is in the catalog, failed ones too.
@Suite struct RunRecordTests {
    @Test func aFailedDocumentRestoreIsRecordedAsAFailedRun() throws {
        var small = CorpusBuilder.Options()
        small.smallFiles = 20
        small.largeFiles = 0
        let f = try Fixture(corpus: small)
        try f.expectOK(["docs", "backup", "acme"])
        // Without its index objects the snapshot's tree cannot be found: the restore fails.
        let indexDir = f.storePath + "/tenants/acme/index"
        for name in try FileManager.default.contentsOfDirectory(atPath: indexDir) {
            try FileManager.default.removeItem(atPath: indexDir + "/" + name)
        }
        let (_, r) = try f.restore()
        #expect(r.code == 1, "\(r.stdout) \(r.stderr)")
        let catalog = try SQLiteCatalog(path: f.home + "/catalog.sqlite")
        let restores = try catalog.runs(tenant: "acme", kind: .documentsRestore, limit: 10)
        #expect(restores.count == 1)
        #expect(restores.first?.status == .failed)
        #expect(restores.first?.endedAt != nil)
        #expect(restores.first?.detail.contains("\"error\"") == true)
        // The backup before it is recorded as it was.
        #expect(try catalog.runs(tenant: "acme", kind: .documentsBackup, limit: 10).map(\.status) == [.ok])
    }
}

/// A drill whose work throws (here: its evidence record cannot be written) ends as a failed run;
/// before drills went through the one run recorder, such a drill left its row `running` forever.
@Suite struct DrillRunRecordTests {
    @Test func aDrillThatThrowsIsRecordedAsAFailedRunNotLeftRunning() throws {
        let dir = TempDirectory("tresor-drillrun")
        let home = dir.sub("home").path
        let tresor = TresorProcess(home: home)
        for args in [
            ["init"], ["store", "add", "local", "--url", "file://" + dir.sub("store").path, "--region", "eu-central"],
            ["tenant", "add", "acme", "--region", "eu-central", "--store", "local", "--pg", "host=127.0.0.1 port=9 dbname=x user=postgres"],
        ] {
            let r = try tresor.run(args)
            #expect(r.code == 0, "\(args) \(r.stderr)")
        }
        // The evidence log's path is taken by a directory: the drill's record cannot be appended.
        let log = home + "/evidence/log.jsonl"
        try? FileManager.default.removeItem(atPath: log)
        try FileManager.default.createDirectory(atPath: log, withIntermediateDirectories: true)
        let drill = try tresor.run(["drill", "run", "acme"])
        #expect(drill.code == 1, "\(drill.stdout) \(drill.stderr)")
        let runs = try SQLiteCatalog(path: home + "/catalog.sqlite").runs(tenant: "acme", kind: .drill, limit: 10)
        #expect(runs.map(\.status) == [.failed], "\(runs)")
        #expect(runs.first?.endedAt != nil)
        #expect(runs.first?.detail.contains("log.jsonl") == true, "\(runs.first?.detail ?? "")")
    }
}

/// Every caller opens the home the same way: the postgres OS user's WAL commands meet the same
/// check and message as the operator's; only the hint fits the caller (that user never runs init).
@Suite struct HomeOpenerTests {
    @Test func walPushOnAHomeWithoutConfigNamesTheMissingInstallationLikeEveryCommand() throws {
        let dir = TempDirectory("tresor-open")
        let tresor = TresorProcess(home: dir.sub("nohome").path)
        let wal = dir.sub("000000010000000000000001")
        try Data(count: 16).write(to: wal)
        let push = try tresor.run(["pg", "wal-push", "acme", wal.path])
        let backup = try tresor.run(["docs", "backup", "acme"])
        #expect(push.code == 2 && backup.code == 2, "\(push.stderr) \(backup.stderr)")
        #expect(push.stderr.contains("error: no Tresor installation at"), "\(push.stderr)")
        let pushLines = push.stderr.split(separator: "\n"), backupLines = backup.stderr.split(separator: "\n")
        #expect(pushLines.first?.hasPrefix(backupLines.first ?? "-") == true, "\(push.stderr) \(backup.stderr)")
        #expect(backupLines.last?.hasPrefix("hint: tresor --home") == true, "\(backup.stderr)")
        #expect(
            pushLines.last?.hasPrefix("hint: give archive_command and restore_command the operator's --home as tresor pg setup acme prints them") == true,
            "\(push.stderr)")
    }
}
