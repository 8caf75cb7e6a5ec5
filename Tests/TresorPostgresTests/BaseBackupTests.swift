import Testing
@testable import TresorPostgres

@Suite struct BaseBackupTests {
    @Test func relationFilesAreThoseUnderBaseAndGlobalWithNumericNames() {
        for p in ["base/1/1259", "base/16384/16397.1", "base/5/2619_fsm", "base/5/2619_vm", "global/1262"] {
            #expect(BaseBackup.isRelationFile(p), "\(p)")
        }
        for p in ["base/1/PG_VERSION", "base/1/pg_internal.init", "global/pg_control", "pg_xact/0000",
                  "postgresql.conf", "backup_label", "base/1", "pg_tblspc/16400"] {
            #expect(!BaseBackup.isRelationFile(p), "\(p)")
        }
    }
}
