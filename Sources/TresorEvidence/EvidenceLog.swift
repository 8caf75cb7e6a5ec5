import Foundation
import TresorCore
import TresorCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The append-only, hash-chained, signed evidence log: one file, one record per line.
///
/// **Appending.** An append opens the file with `O_APPEND`, takes an exclusive `flock` on it (so
/// appenders in any number of processes and threads are serialized), reads the last complete
/// line to learn the next sequence number, the previous hash and the key the chain expects,
/// writes the new line with one `write`, and `fsync`s before it returns. A new file's directory
/// is fsynced too.
///
/// **Crashes.** Only newline-terminated lines are records. A crash during an append can leave
/// part of a line after the last newline, never anything else (appends are serialized and each
/// one first repairs what the previous one left). The next append finds those bytes, copies them
/// to `log.jsonl.torn-<ms>-<hash8>` next to the log, truncates the log back to the last newline,
/// and appends a signed `log-repair` record naming the bytes' count and SHA-256 before its own
/// record, so the repair is itself evidence. Until then `verify` reports the torn tail (exit 3).
///
/// Cost: one open, one lock, a read of the last few KiB, one write and one fsync per record.
public struct EvidenceLog: Sendable {
    /// The log file (`HOME/evidence/log.jsonl`).
    public let url: URL
    /// The key that signs new records.
    public let signer: Ed25519PrivateKey
    public let clock: any Clock

    public init(url: URL, signer: Ed25519PrivateKey, clock: any Clock) {
        self.url = url
        self.signer = signer
        self.clock = clock
    }

    /// What an append wrote.
    public struct Appended: Sendable, Codable {
        public var record: EvidenceRecord
        /// SHA-256 of the record's line: the next record's `prev`.
        public var hash: String
        /// The `log-repair` record written first, when a torn line from a crash was set aside.
        public var repair: EvidenceRecord?
    }

    /// Appends one record signed by ``signer`` and returns it once it is on disk (fsynced).
    ///
    /// `payload` must hold no customer content: ids, hashes, counts, times, versions, results.
    /// Throws ``EvidenceError/Code/wrongKey`` when the log's last record expects another key (a
    /// rotation happened elsewhere, or the key file was replaced), rather than writing a record
    /// that would break the chain.
    @discardableResult
    public func append(kind: EvidenceKind, tenant: String?, payload: [String: EvidenceValue]) throws -> Appended {
        if let tenant, tenant.isEmpty { throw EvidenceError(.badInput, "an evidence record's tenant cannot be empty") }
        let fd = try openLocked()
        defer { close(fd) }  // closing drops the flock
        var tail = try Tail.read(fd: fd, path: url.path)
        var repair: EvidenceRecord? = nil
        if tail.tornBytes > 0 {
            let torn = try setAsideTornTail(fd: fd, tail: tail)
            tail.size -= tail.tornBytes
            tail.tornBytes = 0
            repair = try write(fd: fd, tail: &tail, kind: .logRepair, tenant: nil, payload: torn).record
        }
        var out = try write(fd: fd, tail: &tail, kind: kind, tenant: tenant, payload: payload)
        out.repair = repair
        return out
    }

    /// Appends a `key-rotation` record signed by the current key that names `newKey`; from the next
    /// record on, the chain expects `newKey`. The caller then signs with an ``EvidenceLog`` made
    /// with `newKey` (and keeps the new private key safe before calling this).
    @discardableResult
    public func rotate(to newKey: Ed25519PublicKey) throws -> Appended {
        let raw = newKey.rawRepresentation
        guard raw != signer.publicKey.rawRepresentation else {
            throw EvidenceError(.badInput, "the new evidence key is the current one")
        }
        return try append(
            kind: .keyRotation, tenant: nil,
            payload: [
                "new_key": .string(Hex.encode(raw)),
                "new_key_fingerprint": .string(EvidenceKeys.fingerprint(newKey)),
            ])
    }

    /// The public key the next record must be signed with, following rotations from the last
    /// record (not checked against any trust anchor: ``EvidenceVerifier`` does that). Nil for an
    /// empty or missing log.
    public static func expectedSigner(log url: URL) throws -> String? {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw EvidenceError(.io, "cannot open \(url.path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        return try Tail.read(fd: fd, path: url.path).expectedKey
    }

    // MARK: internals

    private func openLocked() throws -> Int32 {
        let dir = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw EvidenceError(.io, "cannot create \(dir.path): \(error.localizedDescription)")
        }
        let existed = FileManager.default.fileExists(atPath: url.path)
        let fd = open(url.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EvidenceError(.io, "cannot open \(url.path): \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let why = String(cString: strerror(errno))
            close(fd)
            throw EvidenceError(.io, "cannot lock \(url.path): \(why)")
        }
        if !existed { try fsyncDirectory(dir) }
        return fd
    }

    private func write(
        fd: Int32, tail: inout Tail, kind: EvidenceKind, tenant: String?,
        payload: [String: EvidenceValue]
    ) throws -> Appended {
        let ours = Hex.encode(signer.publicKey.rawRepresentation)
        if let expected = tail.expectedKey, expected != ours {
            throw EvidenceError(
                .wrongKey,
                "the evidence log \(url.path) expects records signed by key \(expected.prefix(16))…, not by \(ours.prefix(16))…",
                hint: "use the key named by the log's last key-rotation record (tresor evidence verify shows the chain)")
        }
        let record = EvidenceRecord(
            version: 1, seq: tail.lastSeq + 1, time: TimeFormat.string(clock.now(), fractional: true),
            kind: kind.rawValue, tenant: tenant, key: ours, prev: tail.lastHash, payload: payload)
        let line = EvidenceLine.make(record: record.canonicalBytes(), signer: signer)
        try writeAll(fd: fd, line + [10], offset: tail.size)
        guard fsync(fd) == 0 else { throw EvidenceError(.io, "cannot fsync \(url.path): \(String(cString: strerror(errno)))") }
        let hash = EvidenceLine.hash(line)
        tail = Tail(
            size: tail.size + line.count + 1, tornBytes: 0, lastSeq: record.seq, lastHash: hash,
            expectedKey: kind == .keyRotation ? record.payload["new_key"]?.stringValue : ours)
        return Appended(record: record, hash: hash, repair: nil)
    }

    /// Writes `bytes` at the end; a failed write is undone so no half line stays behind.
    private func writeAll(fd: Int32, _ bytes: [UInt8], offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let why = String(cString: strerror(errno))
                // If the truncate fails too, the bytes are a torn tail that the next append sets aside.
                _ = ftruncate(fd, off_t(offset))
                throw EvidenceError(.io, "cannot append to \(url.path): \(why)")
            }
            done += n
        }
    }

    /// Copies the bytes after the last newline to a file of their own and truncates them away.
    private func setAsideTornTail(fd: Int32, tail: Tail) throws -> [String: EvidenceValue] {
        let start = tail.size - tail.tornBytes
        var torn = [UInt8](repeating: 0, count: tail.tornBytes)
        let n = pread(fd, &torn, torn.count, off_t(start))
        guard n == torn.count else { throw EvidenceError(.io, "cannot read the torn end of \(url.path)") }
        let digest = SHA256.hash(torn).hex
        let millis = Int64((clock.now().timeIntervalSince1970 * 1000).rounded())
        let name = "\(url.lastPathComponent).torn-\(millis)-\(digest.prefix(8))"
        let aside = url.deletingLastPathComponent().appendingPathComponent(name)
        let out = open(aside.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if out < 0 && errno != EEXIST {
            throw EvidenceError(.io, "cannot create \(aside.path): \(String(cString: strerror(errno)))")
        }
        if out >= 0 {  // EEXIST: the same bytes were set aside at the same instant already
            let ok = Glibc.write(out, torn, torn.count) == torn.count && fsync(out) == 0
            close(out)
            guard ok else { throw EvidenceError(.io, "cannot write \(aside.path)") }
            try fsyncDirectory(aside.deletingLastPathComponent())
        }
        guard ftruncate(fd, off_t(start)) == 0, fsync(fd) == 0 else {
            throw EvidenceError(.io, "cannot truncate the torn end of \(url.path): \(String(cString: strerror(errno)))")
        }
        return [
            "torn_bytes": .int(Int64(torn.count)), "torn_sha256": .string(digest), "set_aside": .string(name),
            "after_seq": .int(tail.lastSeq),
        ]
    }

    private func fsyncDirectory(_ dir: URL) throws {
        let d = open(dir.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { throw EvidenceError(.io, "cannot open \(dir.path): \(String(cString: strerror(errno)))") }
        defer { close(d) }
        guard fsync(d) == 0 else { throw EvidenceError(.io, "cannot fsync \(dir.path)") }
    }
}

/// What an appender needs from the end of the log, read backwards in small blocks.
struct Tail {
    var size: Int
    /// Bytes after the last newline (a torn write), 0 when the file ends with a newline.
    var tornBytes: Int
    var lastSeq: Int64
    var lastHash: String
    /// The key the next record must be signed with; nil for an empty log.
    var expectedKey: String?

    static func read(fd: Int32, path: String) throws -> Tail {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw EvidenceError(.io, "cannot stat \(path)") }
        let size = Int(st.st_size)
        // Collect bytes from the end until the last two newlines are known.
        var acc: [UInt8] = []
        var offset = size
        var newlines: [Int] = []  // absolute offsets, last first
        while offset > 0 && newlines.count < 2 {
            let n = min(4096, offset)
            var block = [UInt8](repeating: 0, count: n)
            guard pread(fd, &block, n, off_t(offset - n)) == n else { throw EvidenceError(.io, "cannot read \(path)") }
            for i in stride(from: n - 1, through: 0, by: -1) where block[i] == 10 {
                newlines.append(offset - n + i)
                if newlines.count == 2 { break }
            }
            offset -= n
            acc = block + acc
        }
        guard let lastNL = newlines.first else {
            return Tail(size: size, tornBytes: size, lastSeq: 0, lastHash: EvidenceLine.genesisPrev, expectedKey: nil)
        }
        let lineStart = newlines.count > 1 ? newlines[1] + 1 : 0
        let line = acc[(lineStart - offset)..<(lastNL - offset)]
        guard case .success(let parts) = EvidenceLine.split(line),
            case .success(let record) = EvidenceLine.parseRecord(parts.record)
        else {
            throw EvidenceError(
                .unreadableTail, "the last record of the evidence log \(path) cannot be read; nothing was appended",
                hint: "tresor evidence verify names the damaged record")
        }
        let expected = record.kind == EvidenceKind.keyRotation.rawValue ? record.payload["new_key"]?.stringValue : record.key
        return Tail(
            size: size, tornBytes: size - lastNL - 1, lastSeq: record.seq, lastHash: EvidenceLine.hash(line),
            expectedKey: expected)
    }
}

/// Reads a log's complete lines in order, in 64 KiB blocks (memory bounded by the longest line).
enum EvidenceLogReader {
    /// Calls `body` with each newline-terminated line (without the newline) and its 1-based line
    /// number until it returns false; returns the count of bytes after the last newline.
    static func forEachLine(_ url: URL, _ body: (ArraySlice<UInt8>, Int) throws -> Bool) throws -> Int {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw EvidenceError(.io, "cannot open \(url.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var pending: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 64 << 10)
        var lineNumber = 0
        while true {
            let n = read(fd, &block, block.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw EvidenceError(.io, "cannot read \(url.path): \(String(cString: strerror(errno)))") }
            if n == 0 { return pending.count }
            pending += block[0..<n]
            var start = 0
            while let nl = pending[start...].firstIndex(of: 10) {
                lineNumber += 1
                guard try body(pending[start..<nl], lineNumber) else { return 0 }
                start = nl + 1
            }
            pending.removeFirst(start)
        }
    }
}
