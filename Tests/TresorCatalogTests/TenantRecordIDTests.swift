import Foundation
import Testing
import TresorCatalog
import TresorCore

@Suite struct TenantRecordIDTests {
    /// A row whose name is no valid id comes only from a catalog edited by hand: reading its id
    /// is a corrupt catalog (exit 1) naming the row, not a usage error about an argument the
    /// operator never typed.
    @Test func aHandEditedTenantRowIsACorruptCatalogNamingTheRow() throws {
        let row = TenantRecord(name: "T 02", region: "eu", store: "local", createdAt: Date(timeIntervalSince1970: 0))
        let error = #expect(throws: CatalogError.self) { _ = try row.id }
        #expect(error?.code == .corrupt)
        #expect(error?.kind == .failed)
        #expect(error?.message.contains("tenants row 'T 02'") == true, "\(String(describing: error?.message))")
        let valid = TenantRecord(name: "acme-eu", region: "eu", store: "local", createdAt: Date(timeIntervalSince1970: 0))
        #expect(try valid.id.rawValue == "acme-eu")
    }
}
