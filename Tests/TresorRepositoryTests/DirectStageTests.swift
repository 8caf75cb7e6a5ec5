import Foundation
import Testing
import TresorCore
import TresorTestSupport

@testable import TresorRepository

#if canImport(Glibc)
import Glibc
#endif

/// A large file's run written past the page cache, a full buffer at a time on a thread beside
/// the one that fills the next buffer: a write that fails there is still reported.
@Suite struct DirectStageTests {
    /// A file the stage cannot write to (opened read-only: every `pwrite` fails with EBADF).
    private static func unwritable(_ dir: TempDirectory) throws -> Int32 {
        let path = dir.sub("f").path
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        return fd
    }

    private static let block = [UInt8](repeating: 7, count: 8192)

    @Test func aFullBufferWhoseWriteFailsBehindTheStageFailsTheNextAdd() throws {
        let dir = TempDirectory("direct-stage")
        let fd = try Self.unwritable(dir)
        defer { close(fd) }
        let stage = DirectStage(capacity: 8192, shared: DirectStage.Shared())
        stage.begin(file: 3, fd: fd, at: 0)
        // The first full buffer is handed to the background thread; its failure is learnt when
        // the next full buffer has to wait for it.
        let first = Self.block.withUnsafeBytes { stage.add($0) }
        let second = first == nil ? Self.block.withUnsafeBytes { stage.add($0) } : nil
        #expect([first, second].compactMap { $0?.code } == [EBADF], "first: \(String(describing: first)), second: \(String(describing: second))")
        #expect(stage.isEmpty, "a failed run is dropped")
    }

    @Test func aFullBufferWhoseWriteFailsBehindTheStageFailsItsEnd() throws {
        let dir = TempDirectory("direct-stage")
        let fd = try Self.unwritable(dir)
        defer { close(fd) }
        let shared = DirectStage.Shared()
        let stage = DirectStage(capacity: 8192, shared: shared)
        stage.begin(file: 3, fd: fd, at: 0)
        let added = Self.block.withUnsafeBytes { stage.add($0) }
        let run = added == nil ? stage.end() : nil
        let reported = added ?? run?.error
        #expect(reported?.code == EBADF, "reported: \(String(describing: reported))")
        if let run { #expect(run.file == 3 && run.placements == 1) }
        #expect(shared.directBytes.current == 0)
    }
}
