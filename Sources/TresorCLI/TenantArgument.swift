import ArgumentParser
import TresorCore

/// Tenant arguments are parsed into a ``TenantID`` where they enter the program, so a bad name
/// stops the command before anything is opened: exit 2 with one `error:` line naming the rules.
extension TenantID: ExpressibleByArgument {
    public init?(argument: String) {
        // Nil makes the parser report the value as invalid (exit 2, see `TresorCLI.run`), with
        // the rules from ``TenantID/init(_:)``: nothing is lost.
        try? self.init(argument)
    }
}
