import Foundation
import TresorCore
import TresorCrypto
import TresorEvidence
import TresorRepository

#if canImport(Glibc)
import Glibc
#endif

extension DrillRun {
    /// Restores a random sample of the latest document snapshot's files into the scratch
    /// directory and verifies each: the restored bytes, cut again with the repository's chunker
    /// and identified with its keyed hash, must give exactly the chunk ids the snapshot lists.
    /// Returns the snapshot's id. A tenant without document roots and without document
    /// snapshots has no such check; one with roots but no snapshot fails it.
    mutating func checkDocuments(rng: inout DrillRandom) -> String? {
        do {
            let repo = try installation.repository(for: tenant, create: false)
            guard let latest = try repo.snapshots().last(where: { $0.manifest.kind == .documents }) else {
                if !tenant.docRoots.isEmpty {
                    checks.append(.failed("documents_sample", reason: "the tenant has document roots but no document snapshot"))
                }
                return nil
            }
            let index = try repo.loadIndex()
            let nodes = try repo.loadTree(latest.manifest, index: index)
            let all = nodes.filter { $0.kind == .file }
            guard !all.isEmpty else {
                checks.append(.passed("documents_sample"))
                return latest.id.hex
            }
            let p = installation.policy.drills
            let want = min(all.count, max(p.documentSampleMin, (all.count * p.documentSamplePercent + 99) / 100))
            let sample = Array(all.shuffled(using: &rng).prefix(want))
            let target = dir.appendingPathComponent("docs").path
            let report = try TreeRestorer(repository: repo, index: index, sync: false).restore(nodes: sample, to: target)
            bytes += report.bytes
            files += report.files
            guard report.failed.isEmpty else {
                checks.append(.failed("documents_sample", reason: "\(report.failed.count) of \(sample.count) sampled files could not be restored"))
                return latest.id.hex
            }
            var expected = sample
            if let damage {
                do {
                    if try damage.damage(sample: &expected) { damageApplied = true }
                } catch {
                    damageError = DrillRun.reason("\(error)")
                }
            }
            let verifier = ChunkVerifier(repository: repo)
            var wrong = 0
            for node in expected where try !verifier.matches(node, path: Array((target + "/").utf8) + node.pathBytes) { wrong += 1 }
            if wrong == 0 {
                checks.append(.passed("documents_sample"))
            } else {
                checks.append(.failed("documents_sample", reason: "\(wrong) of \(sample.count) sampled files do not match their recorded hashes"))
            }
            return latest.id.hex
        } catch {
            fail("documents_sample", error)
            return nil
        }
    }
}

/// A drill's document sample, checked on a thread of its own while the database is recovered
/// and checked: it runs ``DrillRun/checkDocuments(rng:)`` on a copy of the drill's state that
/// starts with no checks, bytes or files of its own, and ``join(into:)`` adds what it found to
/// the drill. The sample depends on nothing the database part does (its own scratch
/// subdirectory, its own reads of the repository; the catalog serialises its callers).
final class DocumentSample: @unchecked Sendable {
    // @unchecked: `run` and `snapshot` are written by the thread only, and read by `join` only
    // after `threads.wait()` returned, which orders the accesses.
    private var run: DrillRun
    private var snapshot: String?
    private let threads = ThreadGroup()

    init(_ drill: DrillRun, rng: DrillRandom) {
        var copy = drill
        copy.checks = []
        copy.bytes = 0
        copy.files = 0
        copy.damageApplied = false
        copy.damageError = nil
        run = copy
        threads.start(1, name: "drill-documents") { [self] _ in
            var r = rng
            snapshot = run.timed { $0.checkDocuments(rng: &r) }
        }
    }

    /// Waits for the sample's check and adds its check, bytes, files and damage outcome to
    /// `drill`; returns the document snapshot's id (nil when there was none).
    func join(into drill: inout DrillRun) -> String? {
        threads.wait()
        drill.checks += run.checks
        drill.bytes += run.bytes
        drill.files += run.files
        if run.damageApplied { drill.damageApplied = true }
        drill.damageError = drill.damageError ?? run.damageError
        return snapshot
    }
}

/// Cuts a restored file again with the repository's chunker and compares the keyed hashes of
/// its chunks with those its tree node lists (for a sparse file: the extents' bytes, cut at the
/// end of each extent, as the backup cut them). One window of twice the maximum chunk is reused.
final class ChunkVerifier {
    private let chunker: FastCDC
    private let hmac: HMACSHA256
    private let window: UnsafeMutableRawBufferPointer

    init(repository: TenantRepository) {
        chunker = repository.chunker
        hmac = HMACSHA256(key: repository.keys.chunkID)
        window = .allocate(byteCount: max(2 * repository.config.chunker.maxSize, 1 << 20), alignment: 64)
    }

    deinit { window.deallocate() }

    /// `path` is bytes: a document's name need not be UTF-8.
    func matches(_ node: TreeNode, path: [UInt8]) throws -> Bool {
        let fd = (path + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_NOFOLLOW) }
        }
        guard fd >= 0 else { throw CoreError.failed("cannot open a restored sample file: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var ids: [ObjectID] = []
        let stretches: [(UInt64, UInt64)] = node.flags.contains(.sparse) ? node.extents.map { ($0.offset, $0.length) } : [(UInt64(0), node.size)]
        for (offset, length) in stretches {
            guard lseek(fd, off_t(offset), SEEK_SET) >= 0 else { return false }
            var left = length, start = 0, end = 0
            while true {
                if end == window.count {
                    if end > start { memmove(window.baseAddress!, window.baseAddress! + start, end - start) }
                    end -= start
                    start = 0
                }
                var n = 0
                if left > 0 {
                    n = read(fd, window.baseAddress! + end, Int(min(UInt64(window.count - end), left)))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw CoreError.failed("cannot read a restored sample file: \(String(cString: strerror(errno)))")
                    }
                    if n == 0 { return false }  // shorter than recorded
                    end += n
                    left -= UInt64(n)
                }
                let finishing = left == 0
                while end - start >= chunker.maxSize || (finishing && end > start) {
                    let view = UnsafeRawBufferPointer(rebasing: window[start..<end])
                    let cut = chunker.cut(view)
                    ids.append(hmac.mac(UnsafeRawBufferPointer(rebasing: view[0..<cut])))
                    start += cut
                }
                if finishing { break }
            }
        }
        // Bytes beyond the recorded size are a mismatch too.
        var extra: UInt8 = 0
        if lseek(fd, off_t(node.size), SEEK_SET) >= 0, read(fd, &extra, 1) == 1 { return false }
        return ids == node.chunks
    }
}
