import Foundation
import TresorCore
import TresorCrypto

#if canImport(Glibc)
import Glibc
#endif

/// Writes a BagIt 1.0 bag (RFC 8493) into an archive in one pass.
///
/// Payload files go into the archive as they stream in, hashed (SHA-256) on the way; their
/// manifest lines are spooled to a temp file, so memory does not grow with the number of files.
/// ``finish(info:)`` then writes the tag files after the payload: `manifest-sha256.txt`,
/// `bag-info.txt`, `bagit.txt`, `tagmanifest-sha256.txt`. BagIt puts no order on a serialized
/// bag's entries, and the Library of Congress validator accepts this one (tested).
///
/// Every entry lives under one top-level directory, `bagName/`, as RFC 8493 §4.2 asks of a
/// serialized bag. Memory: one 1 MiB buffer, reused for every file.
final class BagWriter {
    let archive: ArchiveWriter
    let bagName: String
    let mtime: Int64
    private let manifestSpool: FileHandle
    private let manifestSpoolPath: String
    private let hasher = SHA256Hasher()
    private let buffer: UnsafeMutableRawBufferPointer
    /// Payload-Oxum's parts.
    private(set) var payloadBytes: Int64 = 0
    private(set) var payloadFiles: Int64 = 0
    /// Payload paths (relative to the bag) that are not valid UTF-8 and were kept as bytes (tar):
    /// their manifest lines use `%XX` for the invalid bytes, which BagIt validators do not decode.
    private(set) var nonUTF8Names: [[UInt8]] = []
    /// Zip only: paths whose names were escaped (original bytes, name written).
    private(set) var escapedNames: [(original: [UInt8], written: [UInt8])] = []

    static let bufferSize = 1 << 20

    init(archive: ArchiveWriter, bagName: String, mtime: Int64, spoolDirectory: String) throws {
        self.archive = archive
        self.bagName = bagName
        self.mtime = mtime
        manifestSpoolPath = spoolDirectory + "/manifest-sha256.spool"
        guard FileManager.default.createFile(atPath: manifestSpoolPath, contents: nil),
            let h = FileHandle(forUpdatingAtPath: manifestSpoolPath)
        else {
            throw ExportError(.io, "cannot create \(manifestSpoolPath)")
        }
        manifestSpool = h
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        try? manifestSpool.close()  // a spool file: nothing to lose, the directory is removed by the exporter
    }

    private func entryName(_ relative: [UInt8]) -> [UInt8] {
        Array((bagName + "/").utf8) + relative
    }

    /// The name a payload path gets in this archive (escaped in zip when not UTF-8).
    private func archivedPath(_ relative: [UInt8]) -> [UInt8] {
        guard archive.format.needsUTF8Names else {
            if String(validating: relative, as: UTF8.self) == nil { nonUTF8Names.append(relative) }
            return relative
        }
        let written = BagNames.zipName(relative)
        if written != relative { escapedNames.append((relative, written)) }
        return written
    }

    /// Adds a directory entry (keeps empty directories; BagIt itself ignores directories).
    func addDirectory(_ relative: [UInt8], mode: UInt32, mtime: Int64) throws {
        try archive.begin(path: entryName(archivedPath(relative)) + [UInt8(ascii: "/")], kind: .directory, mode: mode, mtime: mtime)
        try archive.finishEntry()
    }

    /// How a payload file's content came out.
    struct Written {
        /// Bytes the source delivered before its end, at most the declared size.
        var delivered: Int64
        var sha256: ObjectID
    }

    /// Adds one payload file of exactly `size` bytes, read with `read` (which fills the buffer it
    /// is given and returns how many bytes it put there, 0 at the end). A source that ends early
    /// is padded with zeros to `size` (the header already promised that size), and a source
    /// with more bytes is read only up to `size`; the caller compares ``Written/delivered`` and
    /// reports the file as changed. The manifest holds the hash of exactly what the archive holds.
    func addFile(
        _ relative: [UInt8], size: Int64, mode: UInt32, mtime: Int64, mtimeNanos: Int = 0,
        read: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> Written {
        let name = archivedPath(relative)
        try archive.begin(path: entryName(name), kind: .file(size: size), mode: mode, mtime: mtime, mtimeNanos: mtimeNanos)
        var remaining = size
        var delivered: Int64 = 0
        while remaining > 0 {
            let want = Int(min(Int64(buffer.count), remaining))
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])
            let n = try read(slice)
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher.update(chunk)
            try archive.write(chunk)
            remaining -= Int64(n)
            delivered += Int64(n)
        }
        if remaining > 0 {
            // The source ended early: pad to the promised size, hashed like the rest.
            let zeros = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(buffer.count, Int(remaining))])
            zeros.initializeMemory(as: UInt8.self, repeating: 0)
            while remaining > 0 {
                let n = Int(min(Int64(zeros.count), remaining))
                let chunk = UnsafeRawBufferPointer(rebasing: zeros[0..<n])
                hasher.update(chunk)
                try archive.write(chunk)
                remaining -= Int64(n)
            }
        }
        try archive.finishEntry()
        let digest = hasher.finalize()
        try appendManifestLine(digest, name)
        payloadBytes += size
        payloadFiles += 1
        return Written(delivered: delivered, sha256: digest)
    }

    /// Adds a payload file whose content is in the file at `path` (a spool file).
    func addFile(_ relative: [UInt8], contentsOf path: String, mode: UInt32, mtime: Int64) throws -> Written {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ExportError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ExportError(.io, "cannot stat \(path): \(String(cString: strerror(errno)))") }
        let w = try addFile(relative, size: Int64(st.st_size), mode: mode, mtime: mtime) { buf in
            try readFully(fd: fd, into: buf, what: path)
        }
        guard w.delivered == Int64(st.st_size) else {
            throw ExportError(.io, "\(path) changed while it was archived")
        }
        return w
    }

    /// A piece of a payload file put together from several sources.
    enum Part {
        /// The whole content of a (spool) file.
        case file(String)
        case text([UInt8])
    }

    /// Adds a payload file that is the concatenation of `parts` (dump.sql: pg_dump's output around
    /// the CSV spool files), streamed through the one buffer.
    func addFile(_ relative: [UInt8], parts: [Part], mode: UInt32, mtime: Int64) throws -> Written {
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        var size: Int64 = 0
        for part in parts {
            switch part {
            case .file(let path):
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw ExportError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
                fds.append(fd)
                var st = stat()
                guard fstat(fd, &st) == 0 else { throw ExportError(.io, "cannot stat \(path): \(String(cString: strerror(errno)))") }
                size += Int64(st.st_size)
            case .text(let bytes):
                size += Int64(bytes.count)
            }
        }
        var index = 0, fdIndex = 0, offset = 0
        let w = try addFile(relative, size: size, mode: mode, mtime: mtime) { buf in
            var got = 0
            while got < buf.count, index < parts.count {
                let room = UnsafeMutableRawBufferPointer(rebasing: buf[got...])
                switch parts[index] {
                case .file(let path):
                    let n = try readFully(fd: fds[fdIndex], into: room, what: path)
                    got += n
                    if n < room.count {
                        index += 1
                        fdIndex += 1
                    }
                case .text(let bytes):
                    let n = min(room.count, bytes.count - offset)
                    bytes.withUnsafeBytes { room.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
                    got += n
                    offset += n
                    if offset == bytes.count {
                        index += 1
                        offset = 0
                    }
                }
            }
            return got
        }
        guard w.delivered == size else { throw ExportError(.io, "a spool file of \(printable(relative)) changed while it was archived") }
        return w
    }

    /// Adds a small payload file from memory.
    func addFile(_ relative: [UInt8], bytes: [UInt8], mode: UInt32 = 0o644) throws {
        var offset = 0
        _ = try addFile(relative, size: Int64(bytes.count), mode: mode, mtime: mtime) { buf in
            let n = min(buf.count, bytes.count - offset)
            bytes.withUnsafeBytes { src in
                buf.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<offset + n]))
            }
            offset += n
            return n
        }
    }

    private func appendManifestLine(_ digest: ObjectID, _ name: [UInt8]) throws {
        let line = Array((digest.hex + "  ").utf8) + BagNames.manifestPath(name) + [0x0A]
        do {
            try manifestSpool.write(contentsOf: line)
        } catch {
            throw ExportError(.io, "cannot write the manifest spool \(manifestSpoolPath): \(error)")
        }
    }

    /// Writes a tag file (at the bag's top level) from memory and returns its manifest line.
    private func addTagFile(_ name: String, _ bytes: [UInt8]) throws -> [UInt8] {
        try archive.begin(path: Array("\(bagName)/\(name)".utf8), kind: .file(size: Int64(bytes.count)), mode: 0o644, mtime: mtime)
        try bytes.withUnsafeBytes { try archive.write($0) }
        try archive.finishEntry()
        return Array((SHA256.hash(bytes).hex + "  " + name + "\n").utf8)
    }

    /// Writes the tag files after the payload. `info` are bag-info.txt's labels and values, in
    /// order; Payload-Oxum is added here. `tagFiles` are more tag files (name, UTF-8 content),
    /// listed in tagmanifest-sha256.txt like the others.
    func finish(info: [(String, String)], tagFiles: [(String, [UInt8])] = []) throws {
        var tagManifest: [UInt8] = []
        // manifest-sha256.txt streams from its spool.
        try manifestSpool.synchronize()
        let manifestSize = try manifestSpool.seekToEnd()
        try manifestSpool.seek(toOffset: 0)
        let spoolFD = manifestSpool.fileDescriptor
        try archive.begin(path: Array("\(bagName)/manifest-sha256.txt".utf8), kind: .file(size: Int64(manifestSize)), mode: 0o644, mtime: mtime)
        var left = Int64(manifestSize)
        while left > 0 {
            let n = try readFully(
                fd: spoolFD, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(Int64(buffer.count), left))]),
                what: manifestSpoolPath)
            guard n > 0 else { throw ExportError(.io, "the manifest spool \(manifestSpoolPath) ended early") }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher.update(chunk)
            try archive.write(chunk)
            left -= Int64(n)
        }
        try archive.finishEntry()
        tagManifest += Array((hasher.finalize().hex + "  manifest-sha256.txt\n").utf8)

        var lines = info.map { "\($0.0): \(Self.tagValue($0.1))" }
        lines.append("Payload-Oxum: \(payloadBytes).\(payloadFiles)")
        tagManifest += try addTagFile("bag-info.txt", Array((lines.joined(separator: "\n") + "\n").utf8))
        tagManifest += try addTagFile("bagit.txt", Array("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n".utf8))
        for (name, bytes) in tagFiles { tagManifest += try addTagFile(name, bytes) }
        _ = try addTagFile("tagmanifest-sha256.txt", tagManifest)
    }

    /// A bag-info value on one line (RFC 8493 allows folding; values here never need it).
    static func tagValue(_ s: String) -> String {
        s.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
    }
}

/// Reads until `buf` is full or the file ends; returns the count. Retries EINTR.
func readFully(fd: Int32, into buf: UnsafeMutableRawBufferPointer, what: String) throws -> Int {
    var got = 0
    while got < buf.count {
        let n = read(fd, buf.baseAddress! + got, buf.count - got)
        if n < 0 {
            if errno == EINTR { continue }
            throw ExportError(.io, "cannot read \(what): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        got += n
    }
    return got
}

/// Writes all of `data` to `fd`, retrying EINTR and short writes; returns 0 or the errno.
func writeFully(fd: Int32, _ data: UnsafeRawBufferPointer) -> Int32 {
    var done = 0
    while done < data.count {
        let n = write(fd, data.baseAddress! + done, data.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        done += n
    }
    return 0
}
