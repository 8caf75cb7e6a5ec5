import Foundation
import Testing
import TresorCore
import TresorEngine

@Suite("Signed export links")
struct ExportLinkTests {
    let signer = ExportLinkSigner(key: Array(repeating: 7, count: 32))
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("a link verifies after a round trip through its text, and expires at its time")
    func validLinkRefused() throws {
        let link = signer.sign(tenant: try TenantID("acme"), file: "acme 2026.tar.zst", expires: 1_800_000_100)
        let parsed = try #require(ExportLink.parse("https://exports.example" + link.path))
        #expect(parsed == link)
        #expect(parsed.path.contains("acme%202026.tar.zst"))
        #expect(signer.verify(parsed, now: now) == .valid)
        #expect(signer.verify(parsed, now: now.addingTimeInterval(100)) == .expired)
    }

    @Test("changing the tenant, file, expiry or id of a link, or another key, makes it forged")
    func alteredLinkAccepted() throws {
        let link = signer.sign(tenant: try TenantID("acme"), file: "a.tar", expires: 1_800_000_100)
        let altered = [
            ExportLink(tenant: try TenantID("globex"), file: link.file, expires: link.expires, id: link.id, signature: link.signature),
            ExportLink(tenant: link.tenant, file: "b.tar", expires: link.expires, id: link.id, signature: link.signature),
            ExportLink(tenant: link.tenant, file: link.file, expires: link.expires + 1, id: link.id, signature: link.signature),
            ExportLink(tenant: link.tenant, file: link.file, expires: link.expires, id: String(repeating: "0", count: 32), signature: link.signature),
        ]
        for a in altered { #expect(signer.verify(a, now: now) == .forged, "\(a)") }
        #expect(ExportLinkSigner(key: Array(repeating: 8, count: 32)).verify(link, now: now) == .forged)
    }

    @Test(
        "paths that leave the tenant's folder are not links at all",
        arguments: [
            "/d/acme/..%2Fglobex%2Fa.tar", "/d/acme/%2e%2e", "/d/../globex/a.tar", "/d/acme/.a.tar.sha256",
            "/d/acme/sub/a.tar", "/d/ACME/a.tar", "/d/acme/a%00.tar", "/d/acme/%0a.tar",
        ])
    func traversalParsedAsLink(path: String) {
        let q = "?exp=1800000100&id=\(String(repeating: "a", count: 32))&sig=\(String(repeating: "b", count: 64))"
        #expect(ExportLink.parse(path + q) == nil)
    }

    /// `tresor serve` and `tresor export link` started together both create the key: each must
    /// read a whole key, the same one, and none may fail (the quick start's serve once read the
    /// key while export link was still writing it, and refused it as "not 64 hex digits").
    @Test func linkKeyCreatedByManyAtOnceIsOneWholeKeyForAll() throws {
        for round in 0..<20 {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tresor-linkkey-\(getpid())-\(round)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let url = dir.appendingPathComponent("keys/links.key")
            let results = Locked<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                do { let key = try ExportLinkKey.load(url, create: true); results.withLock { $0.append(key.hex) } } catch {
                    results.withLock { $0.append("error: \(error)") }
                }
            }
            let seen = results.withLock { $0 }
            let onDisk = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(seen.count == 8 && Set(seen) == [onDisk], "\(seen)")
            #expect(onDisk.count == 64)
            let left = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
            #expect(left == ["links.key"], "temporary files left: \(left)")
        }
    }
}
