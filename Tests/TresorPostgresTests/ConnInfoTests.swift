import Testing
import TresorPostgres

/// Passwords in connection strings, read the way libpq reads them.
@Suite struct ConnInfoTests {
    @Test func noQuotingTrickLeaksAPasswordThroughRedaction() throws {
        let cases = [
            ("host=db password='sec ret\\' tail' user=u", ["sec", "tail"]),
            ("password = plainsecret host=db", ["plainsecret"]),
            ("postgresql://u:s3cr%65tword@db:5432/app", ["s3cr", "etword"]),
            ("postgresql://db/app?password=querysecret&user=u", ["querysecret"]),
        ]
        for (dsn, secrets) in cases {
            let shown = redactDSN(dsn)
            for s in secrets { #expect(!shown.contains(s), "\(dsn) shown as \(shown)") }
            #expect(shown.contains("password=***"), "\(shown)")
            #expect(try ConnInfo(dsn).password != nil)
        }
        let plain = redactDSN("host=db user=u dbname=app")
        #expect(plain.contains("host=db") && plain.contains("user=u") && plain.contains("dbname=app") && !plain.contains("***"), "\(plain)")
        // A string libpq cannot read is not shown at all.
        #expect(redactDSN("host='unterminated password=x") == "(a connection string libpq cannot read)")
    }

    @Test func aPassfileLineEscapesWhatLibpqReadsAsSeparators() {
        #expect(ConnInfo.passfileLine(password: "a:b\\c") == "*:*:*:*:a\\:b\\\\c\n")
    }
}
