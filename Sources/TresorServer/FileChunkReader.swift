import NIOCore
import NIOPosix
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// Reads one byte range of a file in chunks, one chunk at a time, on NIO's blocking-I/O thread
/// pool (a cold file must not block the event loops or Swift's cooperative threads).
///
/// There is no read-ahead: the next chunk is read only when the caller asks, after the previous
/// one was handed to the connection. The chunk buffer is reused when the connection has let go
/// of it (ByteBuffer is copy-on-write: while NIO still holds the previous chunk, writing into
/// the buffer gives it new storage and the old one is freed once sent), so a download that
/// keeps up allocates once.
final class FileChunkReader: @unchecked Sendable {
    // @unchecked: `buffer` is touched only inside `next()`, and a download awaits each `next()`
    // before the next one, so two threads never touch it at once.
    private let fd: Int32
    private let path: String
    private var buffer: ByteBuffer
    private var offset: Int64
    private let end: Int64

    /// Opens `path` for the bytes `range` (half-open).
    init(path: String, range: Range<Int64>, chunk: Int) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CoreError.failed("cannot open \(path): \(String(cString: strerror(errno)))") }
        self.fd = fd
        self.path = path
        self.offset = range.lowerBound
        self.end = range.upperBound
        self.buffer = ByteBufferAllocator().buffer(capacity: chunk)
    }

    deinit { close(fd) }

    /// The next chunk (at most the buffer's capacity), or nil at the end of the range. A file
    /// that got shorter than the range is an error, never a short download that looks complete.
    func next() async throws -> ByteBuffer? {
        guard offset < end else { return nil }
        return try await NIOThreadPool.singleton.runIfActive { try self.readChunk() }
    }

    private func readChunk() throws -> ByteBuffer {
        buffer.clear()
        let want = Int(min(Int64(buffer.capacity), end - offset))
        var failure: Int32 = 0
        let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { raw in
            var n = 0
            while n < want {
                let r = pread(fd, raw.baseAddress! + n, want - n, off_t(offset) + off_t(n))
                if r < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return n
                }
                if r == 0 { break }
                n += r
            }
            return n
        }
        if failure != 0 { throw CoreError.failed("cannot read \(path): \(String(cString: strerror(failure)))") }
        if got < want { throw CoreError.failed("\(path) ended at byte \(offset + Int64(got)) while being sent (it was changed or truncated)") }
        offset += Int64(got)
        return buffer
    }
}
