import Foundation
import TresorCore

/// Where a tenant's data is going: the tenant's region, the store's, and whether an approval to
/// keep the data outside the tenant's region is on file.
public struct RegionPlacement: Sendable, Equatable {
    public var tenant: TenantID
    public var tenantRegion: String
    public var store: String
    public var storeRegion: String
    /// An approval (`tresor region approve`) for this tenant and store is recorded.
    public var approved: Bool

    public init(tenant: TenantID, tenantRegion: String, store: String, storeRegion: String, approved: Bool) {
        self.tenant = tenant
        self.tenantRegion = tenantRegion
        self.store = store
        self.storeRegion = storeRegion
        self.approved = approved
    }

    /// Throws the refusal when the store is outside the tenant's region without an approval.
    public func check() throws {
        guard storeRegion != tenantRegion, !approved else { return }
        throw StoreError(
            .region, "tenant '\(tenant)' is in region \(tenantRegion) but store '\(store)' is in \(storeRegion)",
            hint: "use a store in \(tenantRegion), or record an approval: tresor region approve \(tenant) --store \(store) --by WHO --reason TEXT")
    }
}

/// Keeps a tenant's data in its region: every operation is refused, before it reaches the store,
/// when the store is outside the tenant's region and no approval is on file. ``StoreFactory``
/// also checks the placement before opening (or creating) the store, so no byte is sent.
public final class RegionGuardStore: StoreWrapper {
    public let base: any Store
    public let placement: RegionPlacement

    public init(_ base: any Store, placement: RegionPlacement) {
        self.base = base
        self.placement = placement
    }

    public func around<T>(_ operation: StoreOperation, _ key: String, _ body: () throws -> T) throws -> T {
        try placement.check()
        return try body()
    }
}
