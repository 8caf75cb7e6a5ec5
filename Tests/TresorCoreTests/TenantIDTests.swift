import Foundation
import Testing

@testable import TresorCore

@Suite struct TenantIDTests {
    @Test func theRulesOfTodaysTenantNamesHold() throws {
        for good in ["acme", "a", "acme_2-x", "0day", String(repeating: "z", count: 64)] {
            #expect(try TenantID(good).rawValue == good)
        }
        for bad in ["", "Acme", "-acme", "a/b", "a.b", "acme corp", "ä", String(repeating: "z", count: 65), "../x"] {
            let error = #expect(throws: CoreError.self) { try TenantID(bad) }
            #expect(error?.kind == .usage, "\(bad)")
            #expect(error?.message.hasPrefix("invalid tenant name '\(bad)'") == true)
            #expect(error?.hint != nil)
        }
    }

    @Test func decodingChecksTheRulesToo() throws {
        #expect(try JSONDecoder().decode([TenantID].self, from: Data(#"["acme"]"#.utf8)) == [try TenantID("acme")])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([TenantID].self, from: Data(#"["ACME"]"#.utf8)) }
    }
}
