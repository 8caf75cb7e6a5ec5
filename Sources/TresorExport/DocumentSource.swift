import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// One entry of a document tree, as an export writes it.
public struct DocumentEntry: Sendable {
    public enum Kind: Sendable, Equatable {
        case directory
        /// A regular file of this many bytes (what the archive header promises).
        case file(size: Int64)
        /// A symbolic link and its target, as bytes.
        case symlink(target: [UInt8])
    }

    /// The path below `data/documents/`, `/`-separated, starting with the root's label; bytes
    /// exactly as the file system (or the backup) has them.
    public var path: [UInt8]
    public var kind: Kind
    /// Permission bits.
    public var mode: UInt32
    public var mtime: Int64
    public var mtimeNanos: Int

    public init(path: [UInt8], kind: Kind, mode: UInt32, mtime: Int64, mtimeNanos: Int = 0) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.mtime = mtime
        self.mtimeNanos = mtimeNanos
    }
}

/// A file's content, read in pieces.
public protocol DocumentContent: AnyObject {
    /// Fills up to `buffer.count` bytes and returns how many; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// An entry that could not be exported, and why. It is reported, never dropped quietly.
public struct DocumentProblem: Sendable, Codable, Equatable {
    /// The path below `data/documents/`, printable (non-UTF-8 bytes as `\xNN`).
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// Where an export's documents come from: the live folders (``LiveFolderSource``) or, later, a
/// backup snapshot's tree. A source visits every entry once, directories before what they hold,
/// in a stable order, and streams file contents through ``DocumentContent`` so memory does not
/// depend on file sizes.
public protocol DocumentSource {
    /// Calls `visit` for every entry; for files with the content, valid only during the call.
    /// Entries that cannot be read are returned as problems (the export goes on and reports
    /// them); an error thrown by `visit` or a root that cannot be opened ends the walk.
    func walk(_ visit: (DocumentEntry, (any DocumentContent)?) throws -> Void) throws -> [DocumentProblem]
}

/// The tenant's document folders as they are now, walked with `openat`/`readdir` so names stay
/// bytes; symbolic links are reported as links, never followed.
public struct LiveFolderSource: DocumentSource {
    /// A folder and the label its contents appear under (the same labels document backups use).
    public struct Root: Sendable {
        public var path: String
        public var label: String
        public init(path: String, label: String) {
            self.path = path
            self.label = label
        }
    }

    public let roots: [Root]

    public init(roots: [Root]) { self.roots = roots }

    public func walk(_ visit: (DocumentEntry, (any DocumentContent)?) throws -> Void) throws -> [DocumentProblem] {
        var problems: [DocumentProblem] = []
        for root in roots {
            let fd = open(root.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                throw ExportError(
                    .usage, "cannot open document root \(root.path): \(String(cString: strerror(errno)))",
                    hint: "fix the folder's permissions, or the tenant's --docs roots")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw ExportError(.io, "cannot stat \(root.path): \(String(cString: strerror(errno)))") }
            let label = Array(root.label.utf8)
            try visit(
                DocumentEntry(
                    path: label, kind: .directory, mode: UInt32(st.st_mode) & 0o7777,
                    mtime: Int64(st.st_mtim.tv_sec), mtimeNanos: Int(st.st_mtim.tv_nsec)), nil)
            try walkDirectory(fd: fd, path: label, visit: visit, problems: &problems)
        }
        return problems
    }

    private func walkDirectory(
        fd: Int32, path: [UInt8], visit: (DocumentEntry, (any DocumentContent)?) throws -> Void,
        problems: inout [DocumentProblem]
    ) throws {
        let names: [[UInt8]]
        do {
            names = try Self.list(fd)
        } catch {
            problems.append(DocumentProblem(path: printable(path), reason: "cannot list: \(error)"))
            return
        }
        for name in names {
            let child = path + [UInt8(ascii: "/")] + name
            func problem(_ what: String) { problems.append(DocumentProblem(path: printable(child), reason: "\(what): \(String(cString: strerror(errno)))")) }
            var st = stat()
            let ok = (name + [0]).withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { fstatat(fd, $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) == 0 }
            }
            guard ok else { problem("cannot stat (removed during the export?)"); continue }
            let mode = UInt32(st.st_mode) & 0o7777
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                let sub = Self.openAt(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { problem("cannot open folder"); continue }
                defer { close(sub) }
                try visit(
                    DocumentEntry(
                        path: child, kind: .directory, mode: mode,
                        mtime: Int64(st.st_mtim.tv_sec), mtimeNanos: Int(st.st_mtim.tv_nsec)), nil)
                try walkDirectory(fd: sub, path: child, visit: visit, problems: &problems)
            case S_IFREG:
                let f = Self.openAt(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                guard f >= 0 else { problem("cannot open"); continue }
                defer { close(f) }
                // The size and time of what was opened, not of what the name pointed at before.
                var fst = stat()
                guard fstat(f, &fst) == 0 else { problem("cannot stat"); continue }
                let content = FileContent(fd: f, path: child)
                try visit(
                    DocumentEntry(
                        path: child, kind: .file(size: Int64(fst.st_size)), mode: UInt32(fst.st_mode) & 0o7777,
                        mtime: Int64(fst.st_mtim.tv_sec), mtimeNanos: Int(fst.st_mtim.tv_nsec)), content)
            case S_IFLNK:
                var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = (name + [0]).withUnsafeBufferPointer { p in
                    p.withMemoryRebound(to: CChar.self) { c in
                        target.withUnsafeMutableBufferPointer { t in
                            t.withMemoryRebound(to: CChar.self) { readlinkat(fd, c.baseAddress!, $0.baseAddress!, $0.count) }
                        }
                    }
                }
                guard n >= 0 else { problem("cannot read link"); continue }
                try visit(
                    DocumentEntry(
                        path: child, kind: .symlink(target: Array(target[0..<n])), mode: mode,
                        mtime: Int64(st.st_mtim.tv_sec), mtimeNanos: Int(st.st_mtim.tv_nsec)), nil)
            default:
                problems.append(
                    DocumentProblem(path: printable(child), reason: "not a regular file, folder or symbolic link (socket, fifo or device): not exported"))
            }
        }
    }

    private static func openAt(_ dir: Int32, _ name: [UInt8], _ flags: Int32) -> Int32 {
        (name + [0]).withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { openat(dir, $0.baseAddress!, flags) } }
    }

    /// The names in a directory (without `.` and `..`), sorted by their bytes.
    private static func list(_ fd: Int32) throws -> [[UInt8]] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            throw ExportError(.io, String(cString: strerror(errno)))
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        errno = 0
        while let ent = readdir(dir) {
            let name: [UInt8] = withUnsafeBytes(of: &ent.pointee.d_name) { raw in
                let n = strnlen(raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
                return Array(raw[0..<n])
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        if errno != 0 { throw ExportError(.io, String(cString: strerror(errno))) }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }
}

/// An open regular file read from its start.
final class FileContent: DocumentContent {
    let fd: Int32
    let path: [UInt8]

    init(fd: Int32, path: [UInt8]) {
        self.fd = fd
        self.path = path
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readFully(fd: fd, into: buffer, what: printable(path))
    }
}
