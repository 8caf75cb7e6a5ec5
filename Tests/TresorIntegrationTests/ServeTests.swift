import Foundation
import Testing
import TresorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `tresor serve` on 127.0.0.1 with an ephemeral port, driven by the real `curl`.
@Suite("tresor serve", .serialized)
struct ServeTests {
    /// A fixture with tenants acme and globex, a published export of acme, a 48 MiB random file
    /// of acme's and a file of globex's, and a running server (2 downloads per tenant at once).
    final class Served: @unchecked Sendable {
        let f: Fixture
        let server: Process
        let base: String
        var exports: URL { URL(fileURLWithPath: f.home).appendingPathComponent("exports") }

        /// `exportsPolicy`: more lines for the policy's [exports] table.
        init(exportsPolicy: String = "") throws {
            f = try Fixture(
                corpus: {
                    var o = CorpusBuilder.Options(); o.smallFiles = 20; o.largeFiles = 1; o.largeFileSize = 1 << 20; return o
                }())
            try f.expectOK(["tenant", "add", "globex", "--region", "eu-central", "--store", "local", "--docs", f.docs.path])
            try Data("[exports]\nmax_concurrent_downloads = 2\n\(exportsPolicy)".utf8)
                .write(to: URL(fileURLWithPath: f.home).appendingPathComponent("policies/zz-serve.toml"))
            try f.expectOK(["export", "acme", "--publish", "--out", "acme.tar"])
            let ex = URL(fileURLWithPath: f.home).appendingPathComponent("exports")
            try FileManager.default.createDirectory(at: ex.appendingPathComponent("globex"), withIntermediateDirectories: true)
            try ServeTests.sh("head -c \(48 << 20) /dev/urandom > '\(ex.path)/acme/big.bin'; head -c \(16 << 20) /dev/urandom > '\(ex.path)/globex/g.bin'")

            server = f.tresor.start(["serve", "--listen", "127.0.0.1:0"])
            let out = Pipe()
            server.standardOutput = out
            server.standardError = FileHandle.standardError
            try server.run()
            var line = Data()
            while !line.contains(0x0a) {
                let d = out.fileHandleForReading.availableData
                if d.isEmpty { break }
                line.append(d)
            }
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.hasPrefix("listening on http://") else {
                server.terminate()
                throw Failure("tresor serve did not start: \(text)")
            }
            base = String(text.dropFirst("listening on ".count))
        }

        deinit {
            server.terminate()
            server.waitUntilExit()
        }

        /// A link printed by `tresor export link`.
        func link(_ tenant: String, _ file: String, extra: [String] = []) throws -> String {
            let r = try f.expectOK(["--json"] + extra + ["export", "link", tenant, file, "--base", base])
            return try #require(r.json()?["link"] as? String)
        }

        /// The access log's entries, once `count` are there (entries of interrupted downloads are
        /// written when the server notices the client went away).
        func accessLog(atLeast count: Int) throws -> [[String: Any]] {
            var entries: [[String: Any]] = []
            for _ in 0..<200 {
                let data = (try? Data(contentsOf: exports.appendingPathComponent("access.jsonl"))) ?? Data()
                entries = data.split(separator: 0x0a).compactMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
                if entries.count >= count { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return entries
        }
    }

    struct Failure: Error, CustomStringConvertible { let description: String; init(_ d: String) { description = d } }

    /// Runs a shell command; returns its exit status and standard output.
    @discardableResult
    static func sh(_ command: String) throws -> (code: Int32, out: String) {
        try runCapturingOutput("/bin/bash", ["-c", command])
    }

    static func sha256(_ path: String) throws -> String {
        String(try sh("sha256sum '\(path)'").out.prefix(64))
    }

    /// Status code and body of a GET with curl (`--path-as-is` so that `..` reaches the server).
    static func get(_ url: String, headers: [String] = []) throws -> (status: Int, body: String) {
        let h = headers.map { "-H '\($0)'" }.joined(separator: " ")
        let r = try sh("curl -s --path-as-is \(h) -o /dev/stdout -w '%{http_code}' '\(url)'")
        var body = String(r.out.dropLast(3))
        if body.hasSuffix("\n") { body.removeLast() }
        return (Int(r.out.suffix(3)) ?? -1, body)
    }

    @Test("a download cut at random points and resumed with curl -C - has the file's SHA-256; headers carry size, ETag and Repr-Digest")
    func resumedDownloadCorrupt() throws {
        let s = try Served()
        let link = try s.link("acme", "big.bin")
        let bigPath = s.exports.appendingPathComponent("acme/big.bin").path
        let expected = try Self.sha256(bigPath)
        let size = 48 << 20
        let part = s.f.dir.sub("big.part").path
        let cut1 = Int.random(in: 1..<(size / 3)), cut2 = Int.random(in: (size / 3)..<(2 * size / 3))

        // Cut 1: a whole-file GET whose reader stops after cut1 bytes.
        try Self.sh("curl -s '\(link)' | head -c \(cut1) > '\(part)'")
        #expect(try FileManager.default.attributesOfItem(atPath: part)[.size] as? Int == cut1)
        // Cut 2: a resumed GET from cut1, stopped after cut2 - cut1 more bytes.
        try Self.sh("curl -s -C \(cut1) '\(link)' | head -c \(cut2 - cut1) >> '\(part)'")
        // Cut 3: curl -C - on the partial file, killed after a random moment while throttled.
        try Self.sh("curl -s -C - --limit-rate 20M -o '\(part)' '\(link)' & pid=$!; sleep 0.$((RANDOM % 5 + 1)); kill -9 $pid; wait $pid")
        let before = try FileManager.default.attributesOfItem(atPath: part)[.size] as? Int ?? 0
        #expect(before >= cut2 && before < size)
        // The end: curl -C - completes it with a 206.
        let last = try Self.sh("curl -s -C - -o '\(part)' -w '%{http_code}' '\(link)'")
        #expect(last.out == "206", "\(last.out)")
        #expect(try Self.sha256(part) == expected)

        // Headers of a whole-file download.
        let head = try Self.sh("curl -s -D - -o /dev/null '\(link)'").out.lowercased()
        #expect(head.contains("content-length: \(size)"))
        #expect(head.contains("etag: \"\(expected)\""))
        let digest = Data((0..<32).map { UInt8(expected.dropFirst($0 * 2).prefix(2), radix: 16)! }).base64EncodedString()
        #expect(head.contains("repr-digest: sha-256=:\(digest.lowercased()):"), "\(head)")
        #expect(head.contains("accept-ranges: bytes"))
        // An unsatisfiable range: 416 with the size.
        let r416 = try Self.sh("curl -s -D - -o /dev/null -r \(size)- '\(link)'").out.lowercased()
        #expect(r416.hasPrefix("http/1.1 416"), "\(r416)")
        #expect(r416.contains("content-range: bytes */\(size)"))

        // The published export (written by tresor export --publish) is served with the SHA-256
        // the export recorded in the evidence log.
        let tarLink = try s.link("acme", "acme.tar")
        let tarCopy = s.f.dir.sub("acme-copy.tar").path
        try Self.sh("curl -s -o '\(tarCopy)' '\(tarLink)'")
        let list = try s.f.expectOK(["--json", "evidence", "list", "--kind", "export", "--tenant", "acme"])
        let payload = (list.json()?["entries"] as? [[String: Any]])?.first?["payload"] as? [String: Any]
        #expect(payload?["archive_sha256"] as? String == (try Self.sha256(tarCopy)))

        // Every attempt is in the access log: 4 cut or resumed downloads, the header read, the
        // 416 and the export: 7, the cut ones marked incomplete.
        let entries = try s.accessLog(atLeast: 7)
        #expect(entries.count == 7, "\(entries)")
        let linkID = String(link.split(separator: "id=")[1].prefix(32))
        #expect(entries.filter { $0["link"] as? String == linkID }.count == 6)
        #expect(entries.filter { $0["complete"] as? Bool == false }.count >= 2)
        #expect(entries.allSatisfy { ($0["address"] as? String)?.hasPrefix("127.0.0.1:") == true })
        #expect(entries.contains { $0["status"] as? Int == 416 })
    }

    @Test("other tenants', expired, revoked, forged and path-trick links get 403 or 404 and nothing else; all are logged")
    func linkReachesWhatItShouldNot() throws {
        let s = try Served()
        let link = try s.link("acme", "big.bin")
        let globexLink = try s.link("globex", "g.bin")
        let base = s.base
        let query = String(link[link.firstIndex(of: "?")!...])
        var attempts: [(String, Int)] = []
        func refuse(_ url: String, _ status: Int) throws {
            let r = try Self.get(url)
            #expect(r.status == status, "\(url): \(r.status)")
            #expect(r.body == (status == 403 ? "forbidden" : "not found"), "\(url): \(r.body)")
            attempts.append((url, status))
        }
        // Another tenant's file with acme's signature, and acme's name with globex's signature.
        try refuse(base + "/d/globex/g.bin" + query, 403)
        try refuse(link.replacingOccurrences(of: "/d/acme/", with: "/d/globex/"), 403)
        try refuse(globexLink.replacingOccurrences(of: "/d/globex/g.bin", with: "/d/acme/big.bin"), 403)
        // Forged: one signature digit changed; a later expiry with the same signature.
        let sig = link.suffix(64)
        let flipped = String(sig.first == "0" ? "1" : "0") + sig.dropFirst()
        try refuse(String(link.dropLast(64)) + flipped, 403)
        let exp = link.split(separator: "exp=")[1].prefix { $0.isNumber }
        try refuse(link.replacingOccurrences(of: "exp=\(exp)", with: "exp=\(Int(exp)! + 86400)"), 403)
        // Expired: signed by a clock a year back, 7 days' life.
        try refuse(try s.link("acme", "big.bin", extra: ["--now", "2025-11-01T00:00:00Z"]), 403)
        // Revoked.
        let revoked = try s.link("acme", "big.bin")
        #expect(try Self.get(revoked, headers: ["Range: bytes=0-9"]).status == 206)
        attempts.append((revoked, 206))
        try s.f.expectOK(["export", "revoke", revoked])
        try refuse(revoked, 403)
        // Path tricks: out of the tenant's folder, to the key, to the digest cache, nested.
        for path in [
            "/d/acme/..%2F..%2Fkeys%2Flinks.key", "/d/acme/../../keys/links.key", "/d/acme/.big.bin.sha256",
            "/d/acme/%2e%2e%2fglobex%2fg.bin", "/d/acme/x/../big.bin", "/d/..%2Fkeys/links.key", "/keys/links.key",
        ] {
            try refuse(base + path + query, 404)
        }
        // A forged link is not revocable (exit 2), the link list is unchanged.
        let bad = try s.f.tresor.run(["export", "revoke", String(link.dropLast(64) + flipped)])
        #expect(bad.code == 2, "\(bad.stderr)")

        let entries = try s.accessLog(atLeast: attempts.count)
        #expect(entries.count == attempts.count, "\(entries)")
        #expect(entries.map { $0["status"] as? Int ?? 0 } == attempts.map(\.1))
    }

    @Test("the link page shows the file, its size and SHA-256, HTML-escaped; curl gets the file; the tenant downloads its own access log only")
    func linkPageLeaksOrBreaks() throws {
        let s = try Served()
        let odd = "a<b>&\"c'.bin"
        try Data("hello\n".utf8).write(to: s.exports.appendingPathComponent("acme/\(odd)"))
        let link = try s.link("acme", odd)
        let page = try Self.get(link, headers: ["Accept: text/html,application/xhtml+xml"])
        #expect(page.status == 200)
        #expect(page.body.contains("a&lt;b&gt;&amp;&quot;c&#39;.bin") || page.body.contains("a&lt;b&gt;&amp;&quot;c&#x27;.bin"), "\(page.body)")
        #expect(!page.body.contains("<b>"))
        #expect(page.body.contains("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"))  // sha256 of "hello\n"
        #expect(page.body.contains("6 bytes"))
        #expect(page.body.contains("download=1"))
        let raw = try Self.get(link + "&download=1", headers: ["Accept: text/html"])
        #expect(raw.status == 200 && raw.body == "hello")
        #expect(try Self.get(link).body == "hello")

        // Downloads of globex and acme; each tenant's access log has its own entries only.
        let g = try s.link("globex", "g.bin")
        try Self.sh("curl -s -r 0-99 -o /dev/null '\(g)'")
        _ = try s.accessLog(atLeast: 4)
        let logURL = link.replacingOccurrences(of: "/d/", with: "/access-log/")
        let acmeLog = try Self.get(logURL)
        #expect(acmeLog.status == 200)
        let lines = acmeLog.body.split(separator: "\n")
        #expect(lines.count == 3, "\(acmeLog.body)")
        #expect(lines.allSatisfy { $0.contains("\"tenant\":\"acme\"") })
        let globexLog = try Self.get(g.replacingOccurrences(of: "/d/", with: "/access-log/"))
        #expect(globexLog.body.split(separator: "\n").count == 1)
        #expect(!globexLog.body.contains("acme"))
    }

    @Test(
        "two stalled clients hold the tenant's two download slots until they go away (a third gets 429, another tenant does not), and the server buffers at most about one chunk for each beyond the kernel's socket buffers"
    )
    func slowClientsOverrunDownloadLimitOrServerMemory() throws {
        let s = try Served()
        // The largest send buffer the kernel gives a TCP socket: what it may take off the server
        // beyond what the server itself buffers.
        let wmem = try #require(
            Int(
                String(contentsOfFile: "/proc/sys/net/ipv4/tcp_wmem", encoding: .utf8)
                    .split(whereSeparator: \.isWhitespace).last ?? ""))
        let chunk = 1 << 20
        // Far more than a stalled connection can absorb, so its download cannot have ended.
        let size = max(64 << 20, 4 * wmem)
        try Self.sh("truncate -s \(size) '\(s.exports.path)/acme/huge.bin'")
        let link = try s.link("acme", "huge.bin")

        // Two clients that read the response head and then nothing: slower than any real one.
        let a = try StalledClient(link), b = try StalledClient(link)
        #expect(a.statusLine == "HTTP/1.1 200 OK" && b.statusLine == "HTTP/1.1 200 OK", "\(a.statusLine) \(b.statusLine)")
        // Both hold a slot (taken before the head was sent): a third download of acme's is refused,
        // globex's is not held up.
        #expect(try Self.get(link).status == 429)
        #expect(try Self.sh("curl -s -o /dev/null -w '%{http_code}' -r 0-9 '\(try s.link("globex", "g.bin"))'").out == "206")
        // A download's entry is written when it ends: the two stalled ones have none yet.
        let during = try s.accessLog(atLeast: 2)
        #expect(during.map { $0["status"] as? Int ?? 0 } == [429, 206], "\(during)")

        a.close()
        b.close()
        let entries = try s.accessLog(atLeast: 4)
        let stalled = entries.filter { $0["status"] as? Int == 200 }
        #expect(stalled.count == 2, "\(entries)")
        for (e, client) in zip(
            stalled.sorted { ($0["address"] as? String ?? "") < ($1["address"] as? String ?? "") },
            [a, b].sorted { $0.localAddress < $1.localAddress })
        {
            let sent = try #require(e["bytes"] as? Int)
            #expect(e["complete"] as? Bool == false)
            // What the server accepted = what sat in the two kernel buffers (the client read no
            // body byte) + what the server buffered itself, which must stay within one chunk and
            // NIO's 64 KiB high-water mark (the whole file, or 8 chunks of read-ahead, before).
            let bound = wmem + client.receiveBuffer + chunk + (64 << 10)
            #expect(sent <= bound, "\(sent) bytes accepted, at most \(bound) allowed")
            #expect(sent < size)
        }
        // The slots are free again.
        #expect(try Self.get(link, headers: ["Range: bytes=0-9"]).status == 206)
    }

    @Test(
        "a client that stops reading is cut off after exports.download_stall_timeout: its slot is freed while it stays connected, its entry says incomplete, and it sees the connection end"
    )
    func stalledClientHoldsDownloadSlotForever() throws {
        let s = try Served(exportsPolicy: "download_stall_timeout = \"2s\"\n")
        let wmem = try #require(
            Int(
                String(contentsOfFile: "/proc/sys/net/ipv4/tcp_wmem", encoding: .utf8)
                    .split(whereSeparator: \.isWhitespace).last ?? ""))
        // Far more than a stalled connection can absorb, so its download cannot have ended.
        let size = max(64 << 20, 4 * wmem)
        try Self.sh("truncate -s \(size) '\(s.exports.path)/acme/huge.bin'")
        let link = try s.link("acme", "huge.bin")

        // Both of acme's slots taken by clients that read the head and then nothing, and never
        // disconnect on their own.
        let a = try StalledClient(link), b = try StalledClient(link)
        defer {
            a.close()
            b.close()
        }
        #expect(a.statusLine == "HTTP/1.1 200 OK" && b.statusLine == "HTTP/1.1 200 OK", "\(a.statusLine) \(b.statusLine)")
        // The server gives up on both: their entries are written while they are still connected
        // (before, only their disconnect ended a download).
        let entries = try s.accessLog(atLeast: 2)
        let stalled = entries.filter { $0["status"] as? Int == 200 }
        #expect(stalled.count == 2, "\(entries)")
        for e in stalled {
            #expect(e["complete"] as? Bool == false, "\(e)")
            #expect((e["bytes"] as? Int ?? size) < size, "\(e)")
        }
        // Their slots are free: another download of acme's is served in full.
        let r = try Self.sh("curl -s -o /dev/null -w '%{http_code} %{size_download}' -r 0-9 '\(link)'")
        #expect(r.out == "206 10", "\(r.out)")
        // And the stalled clients see their connections end once they read what was in flight.
        #expect(a.drainUntilClosed(seconds: 30))
        #expect(b.drainUntilClosed(seconds: 30))
    }

    @Test(
        "retention apply removes access log entries older than the policy's six months, atomically and while the server appends, and counts them in its result and evidence; a line without a time is kept and reported"
    )
    func accessLogKeptForeverOrCutShort() throws {
        let s = try Served()
        try s.f.expectOK(["docs", "backup", "acme"])
        let link = try s.link("acme", "acme.tar")
        let logURL = s.exports.appendingPathComponent("access.jsonl")
        // Retention runs with a clock 10 days ahead (--now): "gone2" is past 183 days for it,
        // not for the wall clock.
        let later = Date().addingTimeInterval(10 * 86_400)
        let clock = ["--now", later.formatted(.iso8601)]
        func old(_ days: Double, _ mark: String) -> String {
            let t = later.addingTimeInterval(-days * 86_400).formatted(.iso8601)
            return #"{"address":"","bytes":0,"complete":true,"file":"x","link":"\#(mark)","route":"file","status":404,"tenant":"acme","time":"\#(t)"}"# + "\n"
        }
        // Written by hand after the server started (it prunes when it starts): two entries past
        // 183 days, two within, and a crash's leftover of an earlier pruning. The server's own
        // entries are 10 days old for that clock: kept.
        let handle = try FileHandle(forWritingTo: logURL)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((old(400, "gone1") + old(183.1, "gone2") + old(182.9, "kept1") + old(1, "kept2")).utf8))
        try handle.close()
        try Data("half a line".utf8).write(to: s.exports.appendingPathComponent(".access.jsonl.pruning"))
        #expect(try Self.get(link, headers: ["Range: bytes=0-0"]).status == 206)
        _ = try s.accessLog(atLeast: 5)

        // A dry run counts and changes nothing.
        let dry = try s.f.expectOK(["--json"] + clock + ["retention", "apply", "acme", "--dry-run"])
        let dryResults = try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [[String: Any]]
        let dryLog = dryResults?.first?["accessLog"] as? [String: Any]
        #expect(dryLog?["deleted"] as? Int == 2, "\(dry.stdout)")
        #expect(try String(contentsOf: logURL, encoding: .utf8).contains("gone1"))

        let applied = try s.f.expectOK(["--json"] + clock + ["retention", "apply", "acme"])
        let results = try #require(try JSONSerialization.jsonObject(with: Data(applied.stdout.utf8)) as? [[String: Any]], "\(applied.stdout)")
        let counts = results.first?["accessLog"] as? [String: Any]
        #expect(counts?["deleted"] as? Int == 2 && counts?["kept"] as? Int == 3 && counts?["unreadable"] as? Int == 0, "\(applied.stdout)")
        // The server goes on appending, to the new file.
        #expect(try Self.get(link, headers: ["Range: bytes=1-1"]).status == 206)
        let after = try s.accessLog(atLeast: 4)
        #expect(after.map { $0["link"] as? String ?? "" }.filter { $0.hasPrefix("gone") || $0.hasPrefix("kept") } == ["kept1", "kept2"])
        #expect(after.filter { $0["status"] as? Int == 206 }.count == 2, "\(after)")
        #expect(!FileManager.default.fileExists(atPath: s.exports.appendingPathComponent(".access.jsonl.pruning").path))
        let evidence = try s.f.expectOK(["--json", "evidence", "list", "--kind", "retention", "--tenant", "acme"])
        let payload = (evidence.json()?["entries"] as? [[String: Any]])?.last?["payload"] as? [String: Any]
        #expect(payload?["access_log_entries_deleted"] as? Int == 2, "\(evidence.stdout)")

        // A line without a readable time is never dropped unread: kept, and the run exits 3.
        let garbage = try FileHandle(forWritingTo: logURL)
        try garbage.seekToEnd()
        try garbage.write(contentsOf: Data("not json\n".utf8))
        try garbage.close()
        let problem = try s.f.tresor.run(clock + ["retention", "apply", "acme"])
        #expect(problem.code == 3, "\(problem.stdout) \(problem.stderr)")
        #expect(problem.stdout.contains("1 lines without a readable time kept"), "\(problem.stdout)")
        #expect(try String(contentsOf: logURL, encoding: .utf8).contains("not json"))
    }

    @Test("headless Chromium at a link shows the export's name, tenant, exact size, SHA-256 and a download button whose link gets the file; screenshot saved")
    func linkPageWrongInBrowser() throws {
        let s = try Served()
        let link = try s.link("acme", "acme.tar")
        let tar = s.exports.appendingPathComponent("acme/acme.tar").path
        let sha = try Self.sha256(tar)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: tar)[.size] as? Int)
        #expect(size >= 1024)

        // What the browser built from the page (Chromium asks with Accept: text/html).
        let browser = EvidenceReportCommandTests()
        let dom = try browser.browser(["--dump-dom", link])
        #expect(dom.code == 0)
        #expect(dom.stdout.contains("<h1>acme.tar</h1>"), "\(dom.stdout)")
        #expect(dom.stdout.contains("tenant <strong>acme</strong>"))
        #expect(dom.stdout.contains("<dt>Size</dt><dd>") && dom.stdout.contains(" (\(size) bytes)</dd>"), "\(dom.stdout)")
        #expect(dom.stdout.contains("<dt>SHA-256</dt><dd><code>\(sha)</code></dd>"))
        #expect(!dom.stdout.contains("<script"))
        // The button: an anchor to this link with download=1; following it gets the file itself.
        let button = try #require(
            dom.stdout.range(of: #"<a class="button" href="[^"]*" download="">Download</a>"#, options: .regularExpression),
            "\(dom.stdout)")
        let href = String(dom.stdout[button].split(separator: "\"")[3]).replacingOccurrences(of: "&amp;", with: "&")
        #expect(href.hasSuffix("&download=1"))
        let copy = s.f.dir.sub("via-button.tar").path
        #expect(try Self.sh("curl -s -H 'Accept: text/html' -o '\(copy)' -w '%{http_code}' '\(s.base)\(href)'").out == "200")
        #expect(try Self.sha256(copy) == sha)

        let shot =
            ProcessInfo.processInfo.environment["TRESOR_LINK_PAGE_SCREENSHOT"].map { URL(fileURLWithPath: $0) }
            ?? s.f.dir.sub("link-page.png")
        let png = try browser.browser(["--screenshot=\(shot.path)", "--window-size=1000,700", link])
        #expect(png.code == 0)
        let bytes = try Data(contentsOf: shot)
        #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) && bytes.count > 10_000)
        // Both browser visits got the page, and are logged as such.
        let entries = try s.accessLog(atLeast: 3)
        #expect(entries.filter { $0["route"] as? String == "page" && $0["status"] as? Int == 200 }.count == 2, "\(entries)")
    }

    /// A raw HTTP/1.1 client with a small receive buffer that sends one GET, reads the response
    /// head and then stops reading until `close()`.
    final class StalledClient {
        let fd: Int32
        let statusLine: String
        /// The socket's receive buffer as the kernel set it (it doubles what was asked).
        let receiveBuffer: Int
        let localAddress: String

        init(_ link: String) throws {
            let url = try #require(URLComponents(string: link))
            let port = try #require(url.port)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.fd = fd
            var rcv: Int32 = 64 << 10
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard ok == 0 else { throw Failure("connect: \(String(cString: strerror(errno)))") }
            var got: Int32 = 0, len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len)
            receiveBuffer = Int(got)
            var local = sockaddr_in(), llen = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &llen) } }
            localAddress = "127.0.0.1:\(UInt16(bigEndian: local.sin_port))"
            let request = Array("GET \(url.percentEncodedPath)?\(url.percentEncodedQuery ?? "") HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            guard send(fd, request, request.count, 0) == request.count else { throw Failure("send: \(String(cString: strerror(errno)))") }
            // One byte at a time, so no body byte is read with the head.
            var head = [UInt8](), byte: UInt8 = 0
            while !head.suffix(4).elementsEqual([13, 10, 13, 10]), head.count < 1 << 16 {
                guard recv(fd, &byte, 1, 0) == 1 else { throw Failure("the server closed before the response head ended") }
                head.append(byte)
            }
            statusLine = String(decoding: head.prefix { $0 != 0x0d }, as: UTF8.self)
        }

        /// Reads and drops everything that arrives until the server closes the connection
        /// (true), or until nothing arrives for `seconds` (false).
        func drainUntilClosed(seconds: Int) -> Bool {
            var tv = timeval(tv_sec: seconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 { continue }
                if n == 0 { return true }
                if errno == EINTR { continue }
                return errno == ECONNRESET
            }
        }

        func close() { _ = Glibc.close(fd) }
    }
}
