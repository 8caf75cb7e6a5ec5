import TresorCore

extension TenantRecord {
    /// The tenant's name as a ``TenantID``, checked once where the row leaves the catalog. The
    /// catalog refuses a name that is no valid id when a tenant is added, so this throws only for
    /// a catalog edited by hand: a ``CatalogError/Code/corrupt`` error naming the row.
    public var id: TenantID {
        get throws {
            do {
                return try TenantID(name)
            } catch let e as CoreError {
                throw CatalogError(
                    .corrupt, "the catalog's tenants row '\(name)' holds no valid tenant name (was the catalog edited by hand?)",
                    hint: "rename the row to 1-\(TenantID.maxLength) lowercase letters, digits, '-' or '_', or restore the catalog from a copy",
                    cause: e)
            }
        }
    }
}
