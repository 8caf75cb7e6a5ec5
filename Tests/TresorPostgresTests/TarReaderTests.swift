import Foundation
import Testing
import TresorPostgres

/// Builds a ustar archive with the system's tar, as PostgreSQL's would look.
@Suite struct TarReaderTests {
    /// Found by Benchmarks/fuzz.sh (target tar): a base-256 uid beyond UInt32 trapped in the
    /// header parser; received bytes must give an error.
    @Test func fuzzFoundBase256UidBeyondUInt32IsAnErrorNotATrap() throws {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, at o: Int) { h.replaceSubrange(o..<(o + s.utf8.count), with: Array(s.utf8)) }
        put("a.txt", at: 0)
        put("0000644\0", at: 100)
        h.replaceSubrange(108..<116, with: [0x80, 0x93, 0xca, 0xa0, 0x96, 0x1e, 0x20, 0xe9])  // uid, base-256
        put("0000000\0", at: 116)
        put("00000000000\0", at: 124)
        put("15303305110\0", at: 136)
        h[156] = UInt8(ascii: "0")
        put("ustar\0", at: 257)
        put("00", at: 263)
        let sum = h.enumerated().reduce(0) { $0 + ((148..<156).contains($1.offset) ? 32 : Int($1.element)) }
        put(String(format: "%06o", sum) + "\0 ", at: 148)
        var reader = TarReader()
        #expect(throws: (any Error).self) { try h.withUnsafeBytes { try reader.feed($0) { _ in } } }
    }

    @Test func readsFilesDirectoriesAndSymlinksAcrossAnySplit() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tar-\(UUID().uuidString.prefix(6))")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("d/base/1"), withIntermediateDirectories: true)
        let content = (0..<20000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try Data(content).write(to: dir.appendingPathComponent("d/base/1/1259"))
        try Data().write(to: dir.appendingPathComponent("d/empty"))
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("d/link").path, withDestinationPath: "/tmp/x")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        p.currentDirectoryURL = dir.appendingPathComponent("d")
        p.arguments = ["--format=ustar", "-cf", dir.appendingPathComponent("a.tar").path, "base", "empty", "link"]
        try p.run()
        p.waitUntilExit()
        let tar = Array(try Data(contentsOf: dir.appendingPathComponent("a.tar")))
        for split in [1, 511, 512, 4096, tar.count] {
            var reader = TarReader()
            var files: [String: [UInt8]] = [:]
            var kinds: [String: TarReader.Entry.Kind] = [:]
            var current: [UInt8] = []
            var off = 0
            while off < tar.count {
                let end = min(off + split, tar.count)
                try tar[off..<end].withUnsafeBytes { buf in
                    try reader.feed(buf) { e in
                        switch e {
                        case .begin: current = []
                        case .data(let b): current += b
                        case .end(let entry):
                            kinds[entry.path] = entry.kind
                            if case .file = entry.kind { files[entry.path] = current }
                        }
                    }
                }
                off = end
            }
            #expect(reader.finished, "split \(split)")
            #expect(files["base/1/1259"] == content, "split \(split)")
            #expect(files["empty"] == [])
            #expect(kinds["base/1"] == .directory)
            #expect(kinds["link"] == .symlink("/tmp/x"))
        }
    }
}
