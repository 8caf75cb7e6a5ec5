import TresorCore

extension TenantRecord {
    /// The tenant's name as a ``TenantID``. The catalog refuses a name that is no valid id when
    /// a tenant is added, so this throws only for a catalog edited by hand.
    public var id: TenantID {
        get throws { try TenantID(name) }
    }
}
