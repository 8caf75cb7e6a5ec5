import Foundation
import Testing
import TresorCatalog
import TresorCore

@testable import TresorEngine

/// States and kinds that used to be free text are enums now; what they print, encode and store
/// must stay the text earlier builds wrote, or a deletion plan in the catalog would no longer
/// decode and scripts reading `--json` would break.
@Suite struct KindTextTests {
    @Test func everyKindKeepsTheTextEarlierBuildsPrintedAndStored() {
        #expect(
            DeletionState.allCases.map(\.rawValue) == [
                "running", "not-due", "due", "held", "planned", "deleted", "verification-failed", "versions-left",
            ])
        #expect(DeletionCalendarEntry.State.allCases.map(\.rawValue) == ["scheduled", "in-progress", "held", "overdue", "deleted"])
        #expect(
            SweepFinding.Kind.allCases.map(\.rawValue) == [
                "folder-name", "folder-content", "pg-database", "pg-schema", "pg-role", "pg-slot", "store-object", "store-upload",
                "tresor-place",
            ])
        #expect(TenantFootprint.StoreRole.allCases.map(\.rawValue) == ["primary", "offsite", "region-approval"])
        #expect(TenantFootprint.PathKind.allCases.map(\.rawValue) == ["pg", "spool", "cache", "lock", "scratch", "exports", "secrets"])
        // Interpolation (the human output) prints the same text.
        #expect("\(DeletionState.verificationFailed) \(SweepFinding.Kind.tresorPlace)" == "verification-failed tresor-place")
    }

    @Test func aHeartbeatTickJobIsNoRunKindAndEncodesAsHeartbeat() throws {
        #expect(RunKind(rawValue: "heartbeat") == nil)
        let jobs = [
            TickJob(tenant: "acme", store: nil, kind: .heartbeat, result: .ok, error: nil),
            TickJob(tenant: "acme", store: nil, kind: .run(.documentsBackup), result: .failed, error: "x"),
        ]
        let text = String(decoding: try JSONEncoder().encode(jobs), as: UTF8.self)
        #expect(text.contains(#""kind":"heartbeat""#) && text.contains(#""kind":"docs-backup""#), "\(text)")
        #expect(try JSONDecoder().decode([TickJob].self, from: Data(text.utf8)) == jobs)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(TickJobKind.self, from: Data(#""beatheart""#.utf8)) }
        for kind in RunKind.allCases { #expect(TickJobKind(rawValue: kind.rawValue) == .run(kind)) }
    }

    /// A deletion resumes from the plan it stored when it began, possibly under an earlier build.
    @Test func aDeletionPlanStoredByAnEarlierBuildStillDecodes() throws {
        let stored = """
            {"tenant":"acme","stores":[{"name":"local","url":"file:///s","role":"primary","prefix":"tenants/acme/","keysPrefix":"tenants/acme/keys/"},\
            {"name":"far","url":"file:///f","role":"region-approval","prefix":"tenants/acme/","keysPrefix":"tenants/acme/keys/"}],\
            "paths":[{"kind":"pg","path":"/h/pg/acme"},{"kind":"lock","path":"/h/locks/acme.lock"},{"kind":"secrets","path":"/h/secrets/pg/acme.pgpass"}],\
            "walKey":"/h/pg/acme/wal.key","slot":"tresor_acme"}
            """
        let f = try JSONDecoder().decode(TenantFootprint.self, from: Data(stored.utf8))
        #expect(f.stores.map(\.role) == [.primary, .regionApproval])
        #expect(f.paths.map(\.kind) == [.pg, .lock, .secrets])
    }
}
