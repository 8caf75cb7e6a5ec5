import Foundation
import Testing
import TresorCatalog

/// The catalog names tenants, stores and DSNs: its files are the owner's alone, whatever the
/// umask of the process that creates them.
@Suite struct CatalogPermissionTests {
    @Test func theCatalogAndItsWALAndSHMFilesAreCreatedOwnerOnly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tresor-catperm-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("catalog.sqlite").path
        let old = umask(0o022)  // what a shell usually gives: files 0644 unless created otherwise
        defer { umask(old) }
        let catalog = try SQLiteCatalog(path: path)
        try catalog.addStore(StoreRecord(name: "s", url: "file:///tmp/s", region: "eu", addedAt: Date()))
        for file in [path, path + "-wal", path + "-shm"] {
            let mode = try #require(FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
            #expect(mode == 0o600, "\(file) has mode \(String(mode, radix: 8))")
        }
        withExtendedLifetime(catalog) {}
    }
}
