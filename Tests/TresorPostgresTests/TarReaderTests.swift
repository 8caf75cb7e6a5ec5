import Foundation
import Testing
import TresorPostgres

/// Builds a ustar archive with the system's tar, as PostgreSQL's would look.
@Suite struct TarReaderTests {
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
