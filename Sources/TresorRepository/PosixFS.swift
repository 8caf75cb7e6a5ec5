internal import CPosix
import TresorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File-system calls on names as bytes, relative to directory descriptors, shared by the walker
/// and the restorer. Names never pass through `String`, so a name that is not UTF-8 survives.
public enum PosixFS {
    /// `strerror` text for `code`.
    public static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// Calls `body` with `name` as a NUL-terminated C string (one small copy).
    public static func withCName<R>(_ name: some Collection<UInt8>, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        var buf = [CChar]()
        buf.reserveCapacity(name.count + 1)
        for b in name { buf.append(CChar(bitPattern: b)) }
        buf.append(0)
        return try buf.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; the errno on failure.
    public static func lstatAt(_ dir: Int32, _ name: [UInt8]) -> Result<stat, Errno> {
        var st = stat()
        let rc = withCName(name) { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) }
        return rc == 0 ? .success(st) : .failure(Errno(errno))
    }

    /// `openat(dir, name, flags | O_CLOEXEC | O_NOFOLLOW)` retried on EINTR; the descriptor or errno.
    public static func openAt(_ dir: Int32, _ name: [UInt8], _ flags: Int32, mode: UInt32 = 0) -> Result<Int32, Errno> {
        while true {
            let fd = withCName(name) { openat(dir, $0, flags | O_CLOEXEC | O_NOFOLLOW, mode_t(mode)) }
            if fd >= 0 { return .success(fd) }
            if errno != EINTR { return .failure(Errno(errno)) }
        }
    }

    /// The entry names of the open directory `fd` (without `.` and `..`), sorted bytewise. `fd`
    /// stays open and owned by the caller.
    public static func listDirectory(_ fd: Int32) -> Result<[[UInt8]], Errno> {
        let copy = dup(fd)
        guard copy >= 0 else { return .failure(Errno(errno)) }
        guard let d = fdopendir(copy) else {
            let e = errno
            close(copy)
            return .failure(Errno(e))
        }
        defer { closedir(d) }
        rewinddir(d)
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let e = readdir(d) else {
                if errno != 0 { return .failure(Errno(errno)) }
                break
            }
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: UInt8.self, capacity: 256) { p in
                    Array(UnsafeBufferPointer(start: p, count: strlen(UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self))))
                }
            }
            if name != [0x2E] && name != [0x2E, 0x2E] { names.append(name) }
        }
        names.sort { $0.lexicographicallyPrecedes($1) }
        return .success(names)
    }

    /// The target of the symlink `name` in `dir`, as bytes.
    public static func readLinkAt(_ dir: Int32, _ name: [UInt8], sizeHint: Int) -> Result<[UInt8], Errno> {
        var cap = max(sizeHint, 255) + 1
        while true {
            var buf = [UInt8](repeating: 0, count: cap)
            let n = withCName(name) { c in buf.withUnsafeMutableBytes { readlinkat(dir, c, $0.baseAddress!.assumingMemoryBound(to: CChar.self), cap) } }
            if n < 0 { return .failure(Errno(errno)) }
            if n < cap { return .success(Array(buf[0..<n])) }
            cap *= 2  // the link grew since it was listed; read it whole
        }
    }

    /// The extended attributes of the open file `fd`. A file system without extended attributes
    /// gives an empty list.
    public static func extendedAttributes(_ fd: Int32) -> Result<[TreeNode.ExtendedAttribute], Errno> {
        var size = flistxattr(fd, nil, 0)
        if size < 0 {
            return errno == ENOTSUP ? .success([]) : .failure(Errno(errno))
        }
        if size == 0 { return .success([]) }
        var list = [CChar](repeating: 0, count: size + 1)
        size = flistxattr(fd, &list, size)
        if size < 0 { return .failure(Errno(errno)) }
        var out: [TreeNode.ExtendedAttribute] = []
        var start = 0
        for i in 0..<size where list[i] == 0 {
            let name = list[start..<i].map { UInt8(bitPattern: $0) }
            start = i + 1
            if name.isEmpty { continue }
            var valueSize = withCName(name) { fgetxattr(fd, $0, nil, 0) }
            if valueSize < 0 {
                if errno == ENODATA { continue }  // removed since listing: nothing to keep
                return .failure(Errno(errno))
            }
            var value = [UInt8](repeating: 0, count: valueSize)
            valueSize = withCName(name) { c in value.withUnsafeMutableBytes { fgetxattr(fd, c, $0.baseAddress, valueSize) } }
            if valueSize < 0 { return .failure(Errno(errno)) }
            out.append(.init(name: name, value: Array(value[0..<valueSize])))
        }
        return .success(out)
    }

    /// Sets one extended attribute on the open file `fd`; the errno on failure.
    public static func setExtendedAttribute(_ fd: Int32, _ x: TreeNode.ExtendedAttribute) -> Errno? {
        let rc = withCName(x.name) { c in x.value.withUnsafeBytes { fsetxattr(fd, c, $0.baseAddress, $0.count, 0) } }
        return rc == 0 ? nil : Errno(errno)
    }

    /// The data extents of the open file `fd` of `size` bytes (SEEK_DATA/tresor_SEEK_HOLE), or nil when
    /// the file has no holes or the file system cannot say.
    public static func dataExtents(_ fd: Int32, size: UInt64) -> [TreeNode.Extent]? {
        var extents: [TreeNode.Extent] = []
        var pos: off_t = 0
        let end = off_t(size)
        while pos < end {
            let data = lseek(fd, pos, tresor_SEEK_DATA)
            if data < 0 {
                if errno == ENXIO { break }  // only a hole up to the end
                return nil
            }
            let hole = lseek(fd, data, tresor_SEEK_HOLE)
            if hole < 0 { return nil }
            let stop = min(hole, end)
            if stop > data { extents.append(.init(offset: UInt64(data), length: UInt64(stop - data))) }
            pos = stop
        }
        lseek(fd, 0, SEEK_SET)
        if extents.count == 1 && extents[0].offset == 0 && extents[0].length == size { return nil }
        return extents
    }
}

/// An `errno` value, printable.
public struct Errno: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { PosixFS.errorText(code) }
}
