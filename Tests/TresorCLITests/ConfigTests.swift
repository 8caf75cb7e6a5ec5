import Foundation
import Testing
import TresorCore
import TresorEngine
import TresorTestSupport

@testable import TresorCLI

@Suite struct ConfigSchemaTests {
    @Test func aMisspeltConfigKeyIsOneUsageErrorWithFileLineAndKey() throws {
        let home = TempDirectory("tresor-home")
        let text = Config.initialText.replacingOccurrences(of: "path = \"catalog.sqlite\"", with: "paht = \"catalog.sqlite\"")
        try text.write(to: home.sub("tresor.toml"), atomically: true, encoding: .utf8)
        let line = text.components(separatedBy: "\n").firstIndex { $0.hasPrefix("paht") }! + 1

        let error = #expect(throws: CoreError.self) { try Config.load(from: home.sub("tresor.toml")) }
        #expect(error?.message == "\(home.sub("tresor.toml").path):\(line): catalog.paht: unknown key")
        #expect(error?.hint?.contains("path") == true)
        #expect(TresorCLI.run(arguments: ["--home", home.path, "tenant", "list"], environment: [:]) == 2)
    }

    @Test func aConfigValueOfTheWrongTypeIsNamed() throws {
        let home = TempDirectory("tresor-home")
        try "[keys]\nmaster_key_file = 7\n".write(to: home.sub("tresor.toml"), atomically: true, encoding: .utf8)
        let error = #expect(throws: CoreError.self) { try Config.load(from: home.sub("tresor.toml")) }
        #expect(error?.message == "\(home.sub("tresor.toml").path):2: keys.master_key_file: must be a string, not a whole number")
    }

    @Test func aConfigWithCRLFLineEndsLoads() throws {
        let home = TempDirectory("tresor-home")
        try Config.initialText.replacingOccurrences(of: "\n", with: "\r\n")
            .write(to: home.sub("tresor.toml"), atomically: true, encoding: .utf8)
        let config = try Config.load(from: home.sub("tresor.toml"))
        #expect(config.catalogPath == "catalog.sqlite")
        #expect(config.masterKey == .file("keys/master.key"))
    }
}

@Suite struct FleetConfigTests {
    @Test func aTopLevelCatalogURLSelectsPostgresAndTheLeaseIsRead() throws {
        let home = TempDirectory("tresor-home")
        let text = "catalog = \"postgresql://tresor:pw@db1:5432/tresor\"\n[keys]\nmaster_key_file = \"k\"\n[fleet]\nlease = \"90s\"\n"
        try text.write(to: home.sub("tresor.toml"), atomically: true, encoding: .utf8)
        let config = try Config.load(from: home.sub("tresor.toml"))
        #expect(config.catalogDSN == "postgresql://tresor:pw@db1:5432/tresor")
        #expect(config.leaseSeconds == 90)
        #expect(!config.redactedCatalog.contains("pw"))
        #expect(config.redactedCatalog.contains("password=***"))
    }

    @Test func aCatalogThatIsNoPostgresURLIsAUsageError() throws {
        let home = TempDirectory("tresor-home")
        try "catalog = \"/var/lib/tresor/catalog.sqlite\"\n[keys]\nmaster_key_file = \"k\"\n"
            .write(to: home.sub("tresor.toml"), atomically: true, encoding: .utf8)
        let error = #expect(throws: CoreError.self) { try Config.load(from: home.sub("tresor.toml")) }
        #expect(error?.kind == .usage)
        #expect(error?.message.contains("catalog must be a postgresql:// URL") == true)
    }

    @Test func theInitialConfigKeepsItsSQLiteCatalogTable() throws {
        let home = TempDirectory("tresor-home")
        try Config.initialText.write(to: home.sub("tresor.toml"), atomically: true, encoding: .utf8)
        let config = try Config.load(from: home.sub("tresor.toml"))
        #expect(config.catalogDSN == nil)
        #expect(config.leaseSeconds == 300)
    }
}
