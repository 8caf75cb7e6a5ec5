import Foundation

/// Builds test trees of documents: many small files, empty files, large files, unicode names,
/// symlinks, empty directories, varied modes and mtimes. Deterministic for a seed.
public enum CorpusBuilder {
    public struct Options: Sendable {
        public var smallFiles = 2000
        public var largeFiles = 3
        public var largeFileSize = 6 << 20
        public var seed: UInt64 = 1
        public init() {}
    }

    @discardableResult
    public static func build(at root: URL, options: Options = Options()) throws -> Int {
        var rng = SeededRandom(seed: options.seed)
        let fm = FileManager.default
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        let dirs = ["contracts", "invoices/2025", "invoices/2026", "Ünïcødé 文件", "scans", "deep/a/b/c/d"]
        for d in dirs { try fm.createDirectory(at: root.appendingPathComponent(d), withIntermediateDirectories: true) }
        try fm.createDirectory(at: root.appendingPathComponent("empty-dir/nested-empty"), withIntermediateDirectories: true)
        var count = 0
        for i in 0..<options.smallFiles {
            let dir = dirs[i % dirs.count]
            let name = i % 7 == 3 ? "résumé-\(i).txt" : "doc-\(i).txt"
            let size = Int(rng.next() % 20000)
            let data = i % 3 == 0 ? rng.bytes(size) : rng.text(size)
            let url = root.appendingPathComponent(dir).appendingPathComponent(name)
            try Data(data).write(to: url)
            count += 1
        }
        for i in 0..<5 {
            try Data().write(to: root.appendingPathComponent("contracts/empty-\(i).txt"))
            count += 1
        }
        for i in 0..<options.largeFiles {
            let url = root.appendingPathComponent("scans/large-\(i).bin")
            var data = rng.bytes(options.largeFileSize / 2)
            data += rng.text(options.largeFileSize / 2)
            try Data(data).write(to: url)
            count += 1
        }
        try fm.createSymbolicLink(atPath: root.appendingPathComponent("contracts/latest").path, withDestinationPath: "doc-0.txt")
        try fm.createSymbolicLink(atPath: root.appendingPathComponent("dangling-link").path, withDestinationPath: "../nowhere/at/all")
        let exe = root.appendingPathComponent("scans/run.sh")
        try Data("#!/bin/sh\necho hi\n".utf8).write(to: exe)
        try fm.setAttributes([.posixPermissions: 0o750], ofItemAtPath: exe.path)
        try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: root.appendingPathComponent("contracts/doc-0.txt").path)
        try fm.setAttributes(
            [.modificationDate: Date(timeIntervalSince1970: 1_600_000_000.123)],
            ofItemAtPath: root.appendingPathComponent("invoices/2025").path)
        return count + 1
    }
}

/// Compares two trees byte for byte, with type, mode, mtime (to the microsecond) and symlink targets.
public enum TreeComparer {
    /// Returns a list of differences; empty when the trees are identical.
    public static func differences(_ a: URL, _ b: URL, compareRootMetadata: Bool = false) -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        func entries(_ root: URL) -> [String: URL] {
            var map: [String: URL] = [:]
            guard let e = fm.enumerator(atPath: root.path) else { return map }
            while let rel = e.nextObject() as? String { map[rel] = root.appendingPathComponent(rel) }
            return map
        }
        let ea = entries(a), eb = entries(b)
        for k in Set(ea.keys).symmetricDifference(eb.keys).sorted() {
            out.append("\(k): only in \(ea[k] != nil ? "first" : "second")")
        }
        for (k, ua) in ea.sorted(by: { $0.key < $1.key }) {
            guard let ub = eb[k] else { continue }
            var sa = stat(), sb = stat()
            lstat(ua.path, &sa)
            lstat(ub.path, &sb)
            if sa.st_mode != sb.st_mode { out.append("\(k): mode \(String(sa.st_mode, radix: 8)) vs \(String(sb.st_mode, radix: 8))") }
            let isDir = (sa.st_mode & S_IFMT) == S_IFDIR
            let isLink = (sa.st_mode & S_IFMT) == S_IFLNK
            if sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec / 1000 != sb.st_mtim.tv_nsec / 1000 {
                out.append("\(k): mtime \(sa.st_mtim.tv_sec).\(sa.st_mtim.tv_nsec) vs \(sb.st_mtim.tv_sec).\(sb.st_mtim.tv_nsec)")
            }
            if isLink {
                let ta = try? fm.destinationOfSymbolicLink(atPath: ua.path)
                let tb = try? fm.destinationOfSymbolicLink(atPath: ub.path)
                if ta != tb { out.append("\(k): link \(ta ?? "?") vs \(tb ?? "?")") }
            } else if !isDir {
                if fm.contents(atPath: ua.path) != fm.contents(atPath: ub.path) { out.append("\(k): content differs") }
            }
        }
        return out
    }
}
