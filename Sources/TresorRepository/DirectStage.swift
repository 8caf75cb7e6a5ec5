internal import CPosix
import TresorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One restore thread's run of consecutive bytes of one large file, gathered in a block-aligned
/// buffer and written a whole buffer at a time with `O_DIRECT`, so they skip the page cache: no
/// copy into it, no page allocation and no later write-back by the kernel (the disk gets them
/// when `pwrite` returns, as `dd oflag=direct` writes).
///
/// Only whole 4096-byte blocks at 4096-aligned offsets go direct. Bytes before the run's first
/// aligned offset, and the part of the last block the run does not fill, are written through the
/// page cache with the same descriptor (`O_DIRECT` is set and cleared with `fcntl(F_SETFL)`), so
/// neighbouring runs of the same file, written by other threads, never share a direct block.
///
/// Durability is unchanged: a direct write is on the device when it returns but neither the
/// device's cache nor the file's extent tree and size are flushed, so the batch's `syncfs`
/// (which begins after every write of the batch returned) is still what makes the file durable
/// before it is named. A file system that refuses direct I/O (`EINVAL`, e.g. tmpfs) gets the
/// same bytes through the page cache instead, for the rest of the restore: nothing is lost, only
/// the speed.
final class DirectStage {
    static let block = 4096

    /// Shared by the threads of one restore.
    final class Shared: @unchecked Sendable {
        /// False once a file system refused `O_DIRECT`.
        let supported = Locked(true)
        /// Bytes written with `O_DIRECT` (for tests and figures).
        let directBytes = Locked(UInt64(0))
    }

    private let capacity: Int
    private let shared: Shared
    private var buffer: UnsafeMutableRawBufferPointer?
    /// The file gathered (its index in the batch), or -1.
    private(set) var file = -1
    private(set) var fd: Int32 = -1
    /// File offset of `buffer[0]` (a multiple of `block`).
    private var start: UInt64 = 0
    private var fill = 0
    /// File offset the next added byte must have.
    private(set) var next: UInt64 = 0
    /// Placements whose bytes were added since `begin`.
    private(set) var placements = 0
    /// `O_DIRECT` is set on `fd`.
    private var direct = false

    /// `capacity`: bytes written per direct `pwrite` (rounded up to a multiple of ``block``).
    init(capacity: Int, shared: Shared) {
        self.capacity = max(Self.block, (capacity + Self.block - 1) / Self.block * Self.block)
        self.shared = shared
    }

    deinit { buffer?.deallocate() }

    var isEmpty: Bool { file < 0 }

    /// Starts a run of file `file`, written through `fd`, at `offset`.
    func begin(file: Int, fd: Int32, at offset: UInt64) {
        precondition(isEmpty, "a run is already gathered")
        if buffer == nil { buffer = .allocate(byteCount: capacity, alignment: Self.block) }
        self.file = file
        self.fd = fd
        let b = UInt64(Self.block)
        start = (offset + b - 1) / b * b
        fill = 0
        next = offset
        placements = 0
        direct = false
    }

    /// Adds one placement's bytes at ``next``; writes the buffer each time it is full. The error
    /// of a write that failed (the run is then dropped).
    func add(_ bytes: UnsafeRawBufferPointer) -> Errno? {
        var rest = bytes
        placements += 1
        if next < start && !rest.isEmpty {
            // Before the first aligned offset: through the page cache.
            let head = min(rest.count, Int(start - next))
            if let e = buffered(UnsafeRawBufferPointer(rebasing: rest[..<head]), at: next) { return fail(e) }
            rest = UnsafeRawBufferPointer(rebasing: rest[head...])
            next += UInt64(head)
        }
        while !rest.isEmpty {
            let n = min(capacity - fill, rest.count)
            (buffer!.baseAddress! + fill).copyMemory(from: rest.baseAddress!, byteCount: n)
            fill += n
            next += UInt64(n)
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            if fill == capacity {
                if let e = writeDirect(capacity) { return fail(e) }
                start += UInt64(capacity)
                fill = 0
            }
        }
        return nil
    }

    /// Writes what is held (whole blocks direct, the last partial block through the page cache),
    /// leaves the descriptor without `O_DIRECT` and ends the run: its file, descriptor and
    /// placement count, and the error of a write that failed.
    func end() -> (file: Int, fd: Int32, placements: Int, error: Errno?) {
        let done = (file: file, fd: fd, placements: placements)
        var error: Errno?
        let whole = fill / Self.block * Self.block
        if whole > 0 { error = writeDirect(whole) }
        if error == nil && fill > whole {
            error = buffered(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer!)[whole..<fill]), at: start + UInt64(whole))
        }
        if error == nil && direct { error = setDirect(false) }
        reset()
        return (done.file, done.fd, done.placements, error)
    }

    /// Ends the run without writing what is held (its file failed and will be removed).
    func discard() {
        if direct { _ = setDirect(false) }  // the descriptor only serves the failed file now
        reset()
    }

    private func reset() {
        file = -1
        fd = -1
        fill = 0
        placements = 0
        direct = false
    }

    private func fail(_ e: Errno) -> Errno {
        discard()
        return e
    }

    /// Writes `buffer[0..<count]` (whole blocks) at `start`, with `O_DIRECT` where the file
    /// system takes it.
    private func writeDirect(_ count: Int) -> Errno? {
        let base = UnsafeRawPointer(buffer!.baseAddress!)
        var done = 0
        if !direct && shared.supported.current {
            if let e = setDirect(true) {
                // Refused for this file system: the page cache does the same job, more slowly.
                guard e.code == EINVAL else { return e }
                shared.supported.withLock { $0 = false }
            }
        }
        while direct && done < count {
            let n = pwrite(fd, base + done, count - done, off_t(start) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                guard errno == EINVAL else { return Errno(errno) }
                // Refused (an alignment this device does not take): the rest through the page cache.
                shared.supported.withLock { $0 = false }
                if let e = setDirect(false) { return e }
                break
            }
            done += n
            shared.directBytes.withLock { $0 += UInt64(n) }
            // A short write that ends off a block boundary: the rest through the page cache.
            if done < count && done % Self.block != 0, let e = setDirect(false) { return e }
        }
        if done < count {
            if direct, let e = setDirect(false) { return e }
            return buffered(UnsafeRawBufferPointer(start: base + done, count: count - done), at: start + UInt64(done))
        }
        return nil
    }

    private func buffered(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) -> Errno? {
        if direct, let e = setDirect(false) { return e }
        return TreeRestorer.write(bytes, fd: fd, at: offset)
    }

    private func setDirect(_ on: Bool) -> Errno? {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0 else { return Errno(errno) }
        guard fcntl(fd, F_SETFL, on ? flags | tresor_O_DIRECT : flags & ~tresor_O_DIRECT) == 0 else { return Errno(errno) }
        direct = on
        return nil
    }
}
