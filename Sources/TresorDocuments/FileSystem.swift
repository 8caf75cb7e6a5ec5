#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TresorCore

/// Thin POSIX helpers for the walker and the restorer: they work on paths as bytes-as-String and
/// report errors with errno text, without Foundation's per-call overhead.
enum FS {
    struct Error: TresorFailure {
        let kind: FailureKind
        let message: String
        let hint: String?
    }

    static func lstat(_ path: String) -> stat? {
        var st = stat()
        return Glibc.lstat(path, &st) == 0 ? st : nil
    }

    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// Directory entry names, sorted bytewise, without `.` and `..`.
    static func listDirectory(_ path: String) throws -> [String] {
        guard let d = opendir(path) else {
            throw Error(kind: .failed, message: "cannot list \(path): \(errorText())", hint: nil)
        }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        names.sort { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        return names
    }

    static func readLink(_ path: String) throws -> String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buf, 4096)
        guard n >= 0 else { throw Error(kind: .failed, message: "cannot read link \(path): \(errorText())", hint: nil) }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }
    static func isRegular(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFREG }
    static func isSymlink(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFLNK }
}
