import Foundation
import Testing
import TresorCore
import TresorTestSupport

@testable import TresorPostgres

/// The WAL record walker against PostgreSQL's own reader (`pg_waldump`) on a real segment.
@Suite struct WALRecordsTests {
    /// Record start LSNs as pg_waldump lists them for one segment file.
    func waldumpLSNs(directory: String, segment: String) throws -> [UInt64] {
        let out = directory + "/waldump.out"
        // pg_waldump exits non-zero at the end of the segment's WAL ("invalid record length");
        // its listing up to there is what is compared.
        _ = Spawn.wait(try Spawn.start(ScratchCluster.bin + "/pg_waldump", ["-p", directory, segment, segment], stdout: out, stderr: "/dev/null"))
        let text = try String(contentsOfFile: out, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard let r = line.range(of: "lsn: ") else { return nil }
            return LSN.parse(String(line[r.upperBound...].prefix { $0 != "," }))
        }
    }

    @Test func theLastWholeRecordIsTheOnePostgreSQLReadsLastAtAnyCut() throws {
        let cluster = try ScratchCluster(label: "pgrecords")
        try cluster.start()
        defer { try? cluster.stop() }
        // Records of many sizes, some across page boundaries (a 20 kB row).
        try cluster.sql("CREATE TABLE t (id int, pad text)")
        try cluster.sql("ALTER TABLE t ALTER pad SET STORAGE EXTERNAL")
        try cluster.sql("INSERT INTO t SELECT g, repeat(md5(g::text), 1 + g % 700) FROM generate_series(1, 400) g")
        let segment = try cluster.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        try cluster.sql("SELECT pg_switch_wal()")
        let dir = TempDirectory("tresor-records")
        let copy = dir.sub(segment).path
        try FileManager.default.copyItem(atPath: cluster.dataDirectory + "/pg_wal/" + segment, toPath: copy)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: copy)))
        let start = try #require(WALName(segment)).startLSN
        let listed = try waldumpLSNs(directory: dir.url.path, segment: segment)
        #expect(listed.count > 100, "\(listed.count) records")

        // The whole (switched) segment: the switch record, pg_waldump's last.
        #expect(WALRecords.lastRecordStart(bytes, start: start, length: bytes.count) == listed.last)
        // A cut one byte into a record: the record before it is the last whole one.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<12 {
            let k = Int.random(in: 1..<listed.count, using: &rng)
            let cut = Int(listed[k] - start) + 1
            var streamed = Array(bytes[0..<cut])
            streamed.append(contentsOf: repeatElement(0, count: bytes.count - cut))
            #expect(WALRecords.lastRecordStart(streamed, start: start, length: cut) == listed[k - 1], "cut at \(LSN.format(listed[k]))+1")
        }
        // Bytes after a record that are neither a record nor the zeros after the end: no target
        // (one short of the real end would stop recovery early).
        let k = listed.count / 2
        var garbage = Array(bytes[0..<Int(listed[k] - start)])
        garbage += [100, 0, 0, 0] + [UInt8](repeating: 0x5A, count: 4092)
        #expect(WALRecords.lastRecordStart(garbage, start: start, length: garbage.count) == nil)
        // Its system identifier, as the server reports it.
        let sid = try cluster.sql("SELECT system_identifier FROM pg_control_system()")
        #expect(bytes.withUnsafeBytes { WALRecords.systemIdentifier($0) }.map(String.init) == sid)
    }
}
