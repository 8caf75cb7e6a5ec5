import TresorCore

/// Tests name their tenants with literals (`"acme"`). A literal that is no valid ``TenantID``
/// stops the test at once, naming it: tests never carry an unchecked name into the code.
extension TenantID: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        do {
            try self.init(value)
        } catch {
            preconditionFailure("the test's tenant literal '\(value)' is no valid TenantID: \(error)")
        }
    }
}
