import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorTestSupport

@testable import TresorEvidence

/// One test per kind of chain damage, plus the properties an auditor relies on.
@Suite struct EvidenceChainTests {
    @Test func recordsAreSignedLinesChainedByTheHashOfThePreviousLine() throws {
        let f = try LogFixture(records: 3)
        let lines = try f.lines()
        #expect(lines.count == 3)
        // Check the documented byte layout independently of the verifier.
        let prefix = Array("{\"sig\":\"".utf8), middle = Array("\",\"record\":".utf8)
        var previous: [UInt8]? = nil
        for (i, line) in lines.enumerated() {
            #expect(line.starts(with: prefix) && Array(line[(8 + 128)..<(8 + 128 + 11)]) == middle && line.last == 125)
            let sig = Hex.decode(Array(line[8..<136]).text)!
            let r = Array(line[147..<(line.count - 1)])
            #expect(f.key.publicKey.isValidSignature(sig, for: Array("tresor-evidence-v1\n".utf8) + r))
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r)) as? [String: Any])
            #expect((obj["seq"] as? Int) == i + 1)
            #expect((obj["prev"] as? String) == (previous.map { SHA256.hash($0).hex } ?? String(repeating: "0", count: 64)))
            #expect((obj["time"] as? String) == "2025-11-30T10:53:20.000Z")
            #expect(r.text.hasPrefix("{\"v\":1,\"seq\":\(i + 1),\"time\":"))
            previous = line
        }
        let v = try f.verify()
        #expect(v.intact && v.verifiedRecords == 3 && v.headSeq == 3 && v.headHash == SHA256.hash(lines[2]).hex)
    }

    @Test func editedRecordIsNamed() throws {
        let f = try LogFixture()
        var lines = try f.lines()
        lines[2] = Array(lines[2].text.replacingOccurrences(of: "\"result\":\"pass\"", with: "\"result\":\"fail\"").utf8)
        try f.write(lines)
        let v = try f.verify()
        #expect(!v.intact && v.firstBad?.line == 3 && v.firstBad?.seq == 3 && v.verifiedRecords == 2)
        #expect(v.firstBad?.reason.contains("changed after it was signed") == true)
    }

    @Test func removedRecordIsNamed() throws {
        let f = try LogFixture()
        var lines = try f.lines()
        lines.remove(at: 1)
        try f.write(lines)
        let v = try f.verify()
        #expect(v.firstBad?.line == 2 && v.firstBad?.seq == 3)
        #expect(v.firstBad?.reason.contains("missing") == true)
    }

    @Test func reorderedRecordsAreNamed() throws {
        let f = try LogFixture()
        var lines = try f.lines()
        lines.swapAt(2, 3)
        try f.write(lines)
        let v = try f.verify()
        #expect(v.firstBad?.line == 3 && v.firstBad?.seq == 4 && v.verifiedRecords == 2)
    }

    @Test func insertedRecordIsNamed() throws {
        // A replayed genuine record (validly signed) inserted after itself.
        let f = try LogFixture()
        var lines = try f.lines()
        lines.insert(lines[1], at: 2)
        try f.write(lines)
        let v = try f.verify()
        #expect(v.firstBad?.line == 3 && v.firstBad?.seq == 2)
        #expect(v.firstBad?.reason.contains("repeated, moved or inserted") == true)

        // A record forged with another key and chained correctly.
        let g = try LogFixture()
        var glines = try g.lines()
        glines.insert(LogFixture.forge(seq: 3, after: glines[1], signer: Ed25519PrivateKey()), at: 2)
        try g.write(glines)
        #expect(try g.verify().firstBad?.line == 3)
    }

    @Test func truncatedMiddleIsNamed() throws {
        let f = try LogFixture(records: 6)
        var lines = try f.lines()
        lines.removeSubrange(2..<4)
        try f.write(lines)
        let v = try f.verify()
        #expect(v.firstBad?.line == 3 && v.firstBad?.seq == 5 && v.verifiedRecords == 2)
    }

    @Test func rewrittenHistorySignedByAnotherKeyIsNamed() throws {
        // The attacker rewrites record 2 onward with their own key, chaining every hash correctly.
        let f = try LogFixture(records: 4)
        let lines = try f.lines()
        let attacker = Ed25519PrivateKey()
        var forged = [lines[0]]
        for seq in 2...4 { forged.append(LogFixture.forge(seq: Int64(seq), after: forged.last, signer: attacker)) }
        try f.write(forged)
        let v = try f.verify()
        #expect(v.firstBad?.line == 2 && v.verifiedRecords == 1)
        #expect(v.firstBad?.reason.contains("not signed by the trusted key") == true)
        // Checked with the attacker's key instead, the genuine first record fails: the key
        // inside the records never decides.
        #expect(try f.verify(with: attacker.publicKey).firstBad?.line == 1)
    }

    @Test func forgedRotationRecordIsNamed() throws {
        let f = try LogFixture(records: 2)
        var lines = try f.lines()
        let attacker = Ed25519PrivateKey()
        let hex = Hex.encode(attacker.publicKey.rawRepresentation)
        lines.append(
            LogFixture.forge(
                seq: 3, after: lines[1], signer: attacker, kind: "key-rotation",
                payload: ["new_key": .string(hex)]))
        lines.append(LogFixture.forge(seq: 4, after: lines[2], signer: attacker))
        try f.write(lines)
        let v = try f.verify()
        #expect(v.firstBad?.line == 3 && v.keys.count == 1)
    }

    @Test func genuineRotationIsFollowedAndTheOldKeyStopsCounting() throws {
        let f = try LogFixture(records: 2)
        let next = Ed25519PrivateKey()
        try f.log.rotate(to: next.publicKey)
        let after = EvidenceLog(url: f.url, signer: next, clock: FixedClock(Date(timeIntervalSince1970: 1_764_600_000)))
        try after.append(kind: .drill, tenant: "acme", payload: ["result": "pass"])
        let v = try f.verify()
        #expect(
            v.intact && v.verifiedRecords == 4
                && v.keys == [
                    Hex.encode(f.key.publicKey.rawRepresentation),
                    Hex.encode(next.publicKey.rawRepresentation),
                ])
        // The old key can no longer append: it would break the chain.
        #expect(throws: EvidenceError.self) { try f.log.append(kind: .drill, tenant: nil, payload: [:]) }
        #expect(try f.lines().count == 4)
        // A record the old key signed after the rotation (bypassing the appender) fails verification.
        var lines = try f.lines()
        lines.append(LogFixture.forge(seq: 5, after: lines[3], signer: f.key))
        try f.write(lines)
        #expect(try f.verify().firstBad?.line == 5)
    }

    @Test func tornLastWriteIsReportedThenSetAsideWithASignedRepairRecord() throws {
        let f = try LogFixture(records: 2)
        let lines = try f.lines()
        // What a crash in the middle of the third append leaves: part of a line, no newline.
        let half = Array(LogFixture.forge(seq: 3, after: lines[1], signer: f.key).prefix(100))
        let handle = try FileHandle(forWritingTo: f.url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(half))
        try handle.close()

        let before = try f.verify()
        #expect(!before.intact && before.firstBad == nil && before.tornTailBytes == 100 && before.verifiedRecords == 2)
        #expect(try EvidenceListing.read(log: f.url).outcome == .problemFound)

        let appended = try f.log.append(kind: .drill, tenant: "acme", payload: ["result": "pass"])
        let repair = try #require(appended.repair)
        #expect(repair.seq == 3 && repair.kind == "log-repair" && appended.record.seq == 4)
        #expect(repair.payload["torn_bytes"] == .int(100) && repair.payload["torn_sha256"] == .string(SHA256.hash(half).hex))
        let aside = f.url.deletingLastPathComponent().appendingPathComponent(repair.payload["set_aside"]!.stringValue!)
        #expect(try [UInt8](Data(contentsOf: aside)) == half)
        let after = try f.verify()
        #expect(after.intact && after.verifiedRecords == 4)
    }

    @Test func concurrentAppendersAreSerialized() throws {
        let f = try LogFixture(records: 0)
        let url = f.url, key = f.key
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            let log = EvidenceLog(url: url, signer: key, clock: SystemClock())
            for i in 0..<20 {
                do { try log.append(kind: .control, tenant: nil, payload: ["worker": .int(Int64(worker)), "i": .int(Int64(i))]) } catch {
                    Issue.record("append failed: \(error)")
                }
            }
        }
        let v = try f.verify()
        #expect(v.intact && v.verifiedRecords == 80)
    }

    @Test func listFiltersByTenantKindAndTime() throws {
        let f = try LogFixture(records: 4)  // drill t0, control, drill t2, control
        #expect(try EvidenceListing.read(log: f.url, kind: "drill").entries.map(\.seq) == [1, 3])
        #expect(try EvidenceListing.read(log: f.url, tenant: "t2").entries.map(\.seq) == [3])
        #expect(try EvidenceListing.read(log: f.url, since: Date(timeIntervalSince1970: 1_764_500_001)).entries.isEmpty)
        var lines = try f.lines()
        lines[1] = Array("garbage".utf8)
        try f.write(lines)
        let l = try EvidenceListing.read(log: f.url)
        #expect(l.unreadableLines == [2] && l.entries.count == 3 && l.outcome == .problemFound)
    }
}
