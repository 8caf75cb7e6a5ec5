internal import CArchive
import TresorCore
import TresorCrypto

#if canImport(Glibc)
import Glibc
#endif

/// The archive container an export is written in, chosen by the output file's name.
public enum ArchiveFormat: String, Sendable, Codable, CaseIterable {
    /// POSIX pax tar (ustar headers where they suffice): names kept as bytes, sizes unlimited.
    case tar
    /// The same tar through libarchive's zstd filter.
    case tarZstd = "tar.zst"
    /// Zip with deflate; zip64 records where an entry or the archive passes 4 GiB.
    case zip

    /// The format for `path`'s extension (`.tar`, `.tar.zst`, `.zip`), or nil.
    public init?(path: String) {
        if path.hasSuffix(".tar.zst") {
            self = .tarZstd
        } else if path.hasSuffix(".tar") {
            self = .tar
        } else if path.hasSuffix(".zip") {
            self = .zip
        } else {
            return nil
        }
    }

    /// The extension, with its dot.
    public var fileExtension: String { "." + rawValue }

    /// Whether entry names must be valid UTF-8 (zip), so non-UTF-8 names are escaped.
    public var needsUTF8Names: Bool { self == .zip }
}

/// Where libarchive's output goes: a file descriptor, with the archive's SHA-256 and size
/// computed on the way, so the archive is never read back. One per archive; only the write
/// callback touches it.
final class ArchiveSink {
    let fd: Int32
    let hasher = SHA256Hasher()
    var bytes: Int64 = 0
    /// The errno of the first failed write, 0 if none.
    var writeErrno: Int32 = 0

    init(fd: Int32) { self.fd = fd }

    func write(_ buffer: UnsafeRawPointer, _ length: Int) -> Int {
        let err = writeFully(fd: fd, UnsafeRawBufferPointer(start: buffer, count: length))
        guard err == 0 else {
            writeErrno = err
            return -1
        }
        hasher.update(UnsafeRawBufferPointer(start: buffer, count: length))
        bytes += Int64(length)
        return length
    }
}

private let sinkWrite: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeRawPointer?, Int) -> Int = { _, client, buffer, length in
    guard let client, let buffer else { return -1 }
    return Unmanaged<ArchiveSink>.fromOpaque(client).takeUnretainedValue().write(buffer, length)
}

/// A narrow libarchive writer: pax tar, tar + zstd or zip, written to one file descriptor. It owns
/// the `struct archive` and one reused `archive_entry`, frees both in `deinit`, and turns every
/// libarchive status into an ``ExportError`` in ``check(_:_:)``. Calls block: run it on a thread
/// of its own, not on Swift's cooperative pool.
final class ArchiveWriter {
    /// libarchive converts names through the C library's locale; a process in the "C" locale
    /// cannot hand it non-ASCII UTF-8 names. Every call runs with this UTF-8 locale for the
    /// calling thread only (`uselocale`), so the process's own locale is never changed.
    // A locale object is never changed after newlocale(), so sharing it between threads is safe.
    nonisolated(unsafe) private static let utf8Locale: locale_t? = newlocale(LC_CTYPE_MASK, "C.UTF-8", nil)

    @discardableResult
    private func inUTF8<R>(_ body: () throws -> R) rethrows -> R {
        guard let loc = Self.utf8Locale else { return try body() }
        let old = uselocale(loc)
        defer { uselocale(old) }
        return try body()
    }

    private let archive: OpaquePointer
    private let entry: OpaquePointer
    private let sink: ArchiveSink
    let format: ArchiveFormat

    /// Starts an archive that writes to `fd` (which the caller keeps and closes).
    /// `zstdThreads` above 1 lets zstd compress on that many worker threads of its own while this
    /// thread reads and hashes.
    init(fd: Int32, format: ArchiveFormat, zstdLevel: Int = 3, zstdThreads: Int = 1) throws {
        guard let a = archive_write_new() else { throw ExportError(.archive, "libarchive cannot allocate a writer") }
        guard let e = archive_entry_new() else {
            archive_write_free(a)
            throw ExportError(.archive, "libarchive cannot allocate an entry")
        }
        archive = a
        entry = e
        sink = ArchiveSink(fd: fd)
        self.format = format
        try inUTF8 { try configure(a, format: format, zstdLevel: zstdLevel, zstdThreads: zstdThreads) }
    }

    private func configure(_ a: OpaquePointer, format: ArchiveFormat, zstdLevel: Int, zstdThreads: Int) throws {
        switch format {
        case .tar:
            try check(archive_write_set_format_pax_restricted(a), "choosing pax tar")
        case .tarZstd:
            try check(archive_write_set_format_pax_restricted(a), "choosing pax tar")
            try check(archive_write_add_filter_zstd(a), "adding the zstd filter")
            try check(archive_write_set_filter_option(a, "zstd", "compression-level", "\(zstdLevel)"), "setting the zstd level")
            if zstdThreads > 1 {
                try check(archive_write_set_filter_option(a, "zstd", "threads", "\(zstdThreads)"), "setting zstd threads")
            }
        case .zip:
            try check(archive_write_set_format_zip(a), "choosing zip")
            // Entry names are handed over as UTF-8 (see ``beginFile``); say so in the zip headers.
            try check(archive_write_set_format_option(a, "zip", "hdrcharset", "UTF-8"), "setting zip name encoding")
        }
        // Large blocks, and no padding of the last one: the file ends where the archive ends.
        try check(archive_write_set_bytes_per_block(a, 1 << 16), "setting the block size")
        try check(archive_write_set_bytes_in_last_block(a, 1), "setting the last block size")
        try check(archive_write_open(a, Unmanaged.passUnretained(sink).toOpaque(), nil, sinkWrite, nil), "opening the archive")
    }

    deinit {
        archive_entry_free(entry)
        // archive_write_free closes an archive still open; after a failure that is all we want.
        inUTF8 { _ = archive_write_free(archive) }
    }

    /// The one place a libarchive status becomes a Swift error. Warnings are errors too: an
    /// export that libarchive had to alter is not an exact export.
    @discardableResult
    func check(_ status: Int32, _ what: String) throws -> Int32 {
        if status == ARCHIVE_OK { return status }
        var text = archive_error_string(archive).map { String(cString: $0) } ?? "status \(status)"
        if sink.writeErrno != 0 { text = String(cString: strerror(sink.writeErrno)) }
        throw ExportError(.archive, "\(what) failed: \(text)")
    }

    /// What an entry is.
    enum EntryKind {
        case file(size: Int64)
        case directory
    }

    /// Writes an entry's header. `path` is the entry name as bytes; it is stored as given in tar
    /// (pax marks non-UTF-8 names as binary) and must be valid UTF-8 for zip.
    func begin(path: [UInt8], kind: EntryKind, mode: UInt32, mtime: Int64, mtimeNanos: Int = 0) throws {
        try inUTF8 {
            archive_entry_clear(entry)
            // In the UTF-8 locale a valid name passes through unchanged; pax marks any other as
            // binary (hdrcharset=BINARY) and keeps its bytes.
            (path + [0]).withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { archive_entry_copy_pathname(entry, $0.baseAddress) }
            }
            switch kind {
            case .file(let size):
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_size(entry, size)
            case .directory:
                archive_entry_set_filetype(entry, 0o040000)
            }
            archive_entry_set_perm(entry, mode_t(mode & 0o7777))
            archive_entry_set_mtime(entry, time_t(mtime), mtimeNanos)
            let status = archive_write_header(archive, entry)
            // pax reports a name it cannot translate to UTF-8 with a warning and stores it as
            // bytes (hdrcharset=BINARY): exactly what a non-UTF-8 name should get in tar. Any other
            // warning, and this one for a UTF-8 name or in zip, is an error.
            if status == ARCHIVE_WARN, format != .zip, String(validating: path, as: UTF8.self) == nil { return }
            try check(status, "writing the header of \(printable(path))")
        }
    }

    /// Appends `data` to the current entry's content.
    func write(_ data: UnsafeRawBufferPointer) throws {
        guard data.count > 0 else { return }
        let n = archive_write_data(archive, data.baseAddress, data.count)
        if n != data.count {
            try check(n < 0 ? Int32(n) : ARCHIVE_FATAL, "writing archive data")
        }
    }

    /// Ends the current entry.
    func finishEntry() throws {
        try inUTF8 { try check(archive_write_finish_entry(archive), "finishing an archive entry") }
    }

    /// Writes the archive's trailer and returns its size and SHA-256.
    func close() throws -> (bytes: Int64, sha256: ObjectID) {
        try inUTF8 { try check(archive_write_close(archive), "closing the archive") }
        return (sink.bytes, sink.hasher.finalize())
    }
}

/// A name for messages: UTF-8 as is, other bytes as `\xNN`.
func printable(_ bytes: [UInt8]) -> String {
    if let s = String(validating: bytes, as: UTF8.self) { return s }
    var out = ""
    var i = 0
    while i < bytes.count {
        if let n = utf8SequenceLength(bytes, at: i) {
            out += String(decoding: bytes[i..<i + n], as: UTF8.self)
            i += n
        } else {
            out += "\\x" + hex2(bytes[i])
            i += 1
        }
    }
    return out
}

func hex2(_ b: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}

/// The length of the valid UTF-8 sequence starting at `i`, or nil when the byte there does not
/// start one (a stray continuation byte, an overlong form, a surrogate, a truncated sequence).
func utf8SequenceLength(_ bytes: [UInt8], at i: Int) -> Int? {
    let b0 = bytes[i]
    if b0 < 0x80 { return 1 }
    let n: Int
    switch b0 {
    case 0xC2...0xDF: n = 2
    case 0xE0...0xEF: n = 3
    case 0xF0...0xF4: n = 4
    default: return nil
    }
    guard i + n <= bytes.count else { return nil }
    return String(validating: bytes[i..<i + n], as: UTF8.self) != nil ? n : nil
}
