import ArgumentParser
import Foundation
import TresorCore
import TresorEngine

struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog", abstract: "The installation's catalog (tenants, stores, runs).",
        subcommands: [CatalogMigrateCommand.self])
}

struct CatalogMigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move the embedded SQLite catalog to a PostgreSQL catalog shared by a fleet of workers.",
        discussion: """
            Copies every table into the empty PostgreSQL database, checks the row counts, and then
            switches tresor.toml to catalog = "<url>" in one atomic rename. Refused (exit 2) when the
            target already holds rows. Stop cron's tick while it runs; writers wait on the locked catalog.
            """)
    @Option(help: "Where the catalog is now: sqlite (the home's [catalog] path).") var from: String
    @Option(help: "The PostgreSQL catalog: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB.") var to: String

    func run() throws {
        let r = try HomeOpener(home: ctx.home, configFile: ctx.configFile).migrateCatalog(from: from, to: to)
        ctx.emit(r) {
            (["catalog copied from \(r.from) to \(r.to); \(r.config) now uses it"]
                + r.tables.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value) rows" }).joined(separator: "\n")
        }
    }
}
