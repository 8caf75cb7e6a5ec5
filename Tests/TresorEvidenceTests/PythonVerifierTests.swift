import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorTestSupport

@testable import TresorEvidence

/// scripts/verify-evidence.py, the auditors' verifier, agrees with what Tresor writes: it accepts
/// an intact log (with a key rotation) and rejects every kind of tampering.
@Suite struct PythonVerifierTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/verify-evidence.py").standardizedFileURL.path

    func python(_ log: URL, _ key: URL) throws -> (code: Int32, out: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.script, log.path, key.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func keyFiles(_ f: LogFixture) throws -> (hex: URL, pem: URL) {
        let hex = f.dir.sub("evidence.pub"), pem = f.dir.sub("evidence.pem")
        try (EvidenceKeys.hex(f.key.publicKey) + "\n").write(to: hex, atomically: true, encoding: .utf8)
        try EvidenceKeys.pem(f.key.publicKey).write(to: pem, atomically: true, encoding: .utf8)
        return (hex, pem)
    }

    @Test func acceptsWhatTresorWritesIncludingARotation() throws {
        let f = try LogFixture(records: 3)
        let next = Ed25519PrivateKey()
        try f.log.rotate(to: next.publicKey)
        try EvidenceLog(url: f.url, signer: next, clock: SystemClock())
            .append(kind: .regionApproval, tenant: "acme", payload: ["store": "us", "note": "quote \" backslash \\ tab \t é"])
        let keys = try keyFiles(f)
        for key in [keys.hex, keys.pem] {
            let r = try python(f.url, key)
            #expect(r.code == 0 && r.out.contains("intact: 5 records"), "\(r.out)")
        }
        // The new key alone is not a trust anchor for the history before it.
        let wrong = f.dir.sub("next.pub")
        try EvidenceKeys.hex(next.publicKey).write(to: wrong, atomically: true, encoding: .utf8)
        #expect(try python(f.url, wrong).code == 3)
    }

    @Test func rejectsEachKindOfTampering() throws {
        let attacker = Ed25519PrivateKey()
        let damages: [(String, ([[UInt8]], LogFixture) -> [[UInt8]], String)] = [
            (
                "edit",
                { l, _ in
                    var l = l; l[2] = Array(l[2].text.replacingOccurrences(of: "pass", with: "fail").utf8); return l
                }, "line 3"
            ),
            (
                "remove",
                { l, _ in
                    var l = l; l.remove(at: 1); return l
                }, "line 2"
            ),
            (
                "reorder",
                { l, _ in
                    var l = l; l.swapAt(2, 3); return l
                }, "line 3"
            ),
            (
                "insert",
                { l, _ in
                    var l = l; l.insert(l[1], at: 2); return l
                }, "line 3"
            ),
            (
                "truncate middle",
                { l, _ in
                    var l = l; l.removeSubrange(1..<3); return l
                }, "line 2"
            ),
            (
                "another key",
                { l, _ in
                    var out = [l[0]]
                    for seq in 2...5 { out.append(LogFixture.forge(seq: Int64(seq), after: out.last, signer: attacker)) }
                    return out
                }, "line 2"
            ),
            (
                "forged rotation",
                { l, _ in
                    l + [
                        LogFixture.forge(
                            seq: 6, after: l[4], signer: attacker, kind: "key-rotation",
                            payload: ["new_key": .string(Hex.encode(attacker.publicKey.rawRepresentation))])
                    ]
                }, "line 6"
            ),
        ]
        for (name, damage, expected) in damages {
            let f = try LogFixture(records: 5)
            try f.write(damage(try f.lines(), f))
            let r = try python(f.url, try keyFiles(f).hex)
            #expect(r.code == 3 && r.out.contains("BAD: \(expected):"), "\(name): \(r.code) \(r.out)")
            // The Swift verifier names the same line.
            #expect(try "line \(f.verify().firstBad?.line ?? 0)" == expected, "\(name)")
        }
        let torn = try LogFixture(records: 2)
        let handle = try FileHandle(forWritingTo: torn.url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"sig\":\"ab".utf8))
        try handle.close()
        let r = try python(torn.url, try keyFiles(torn).hex)
        #expect(r.code == 3 && r.out.contains("torn final write"), "\(r.out)")
    }
}
