import Foundation
import Testing
import TresorCatalog
import TresorTestSupport

/// A fresh directory under the system temp dir holding nothing yet; removed when `body` returns.
/// `body` gets the path of a catalog file that does not exist yet.
func withCatalogPath<T>(_ body: (_ catalogPath: String) throws -> T) throws -> T {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("tresor-catalog-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try body(directory.appendingPathComponent("catalog.sqlite").path)
}

// Dates the tests store: whole milliseconds, written as literals so the expected values do not
// come from the conversion under test.
let jan5 = Date(timeIntervalSince1970: 1_767_603_600.250)  // 2026-01-05T09:00:00.250Z
let feb1 = Date(timeIntervalSince1970: 1_769_904_000.001)  // 2026-02-01T00:00:00.001Z
let mar9 = Date(timeIntervalSince1970: 1_773_064_800.999)  // 2026-03-09T14:00:00.999Z
let nov27 = Date(timeIntervalSince1970: 1_795_773_600.123)  // 2026-11-27T10:00:00.123Z

func sampleStore(_ name: String, region: String = "eu-central", addedAt: Date = jan5) -> StoreRecord {
    StoreRecord(name: name, url: "file:///srv/tresor/\(name)", region: region, addedAt: addedAt)
}

func sampleTenant(_ name: String, store: String = "primary") -> TenantRecord {
    TenantRecord(name: name, region: "eu-central", store: store, createdAt: feb1)
}

/// Collects errors thrown on other threads, for tests that use `concurrentPerform`.
final class ErrorSink: @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [any Error] = []

    func record(_ body: () throws -> Void) {
        do { try body() } catch {
            lock.lock()
            collected.append(error)
            lock.unlock()
        }
    }

    var errors: [String] {
        lock.lock()
        defer { lock.unlock() }
        return collected.map { "\($0)" }
    }
}

/// The back ends every catalog test runs against.
enum CatalogBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    /// A database of its own in a real PostgreSQL 15 cluster shared by the tests of this process.
    case postgresql

    var testDescription: String { rawValue }
}

/// Opens a new connection to one test's catalog: every call a separate connection, so what a
/// second one reads is what reached the database.
struct CatalogOpener {
    let backend: CatalogBackend
    let location: String

    func callAsFunction(worker: String = WorkerName.current) throws -> SQLCatalog {
        switch backend {
        case .sqlite: try SQLiteCatalog(path: location, worker: worker)
        case .postgresql: try PostgresCatalog(dsn: location, worker: worker)
        }
    }
}

/// A catalog location that holds nothing yet (a file path not yet created, or an empty
/// database), removed when `body` returns.
func withCatalog<T>(_ backend: CatalogBackend, _ body: (_ open: CatalogOpener) throws -> T) throws -> T {
    switch backend {
    case .sqlite:
        return try withCatalogPath { try body(CatalogOpener(backend: .sqlite, location: $0)) }
    case .postgresql:
        let cluster = try ScratchCluster.shared()
        let db = try cluster.freshDatabase(prefix: "catalog")
        defer { _ = try? cluster.sql("DROP DATABASE \(db.name) WITH (FORCE)") }
        return try body(CatalogOpener(backend: .postgresql, location: db.dsn))
    }
}
