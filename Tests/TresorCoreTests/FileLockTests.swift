import Foundation
import Testing

@testable import TresorCore

@Suite struct FileLockTests {
    @Test func aSecondTakerIsRefusedWithExitFourUntilTheFirstReleases() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("locks-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let locks: any Locks = FileLocks(directory: dir)
        let first = try locks.acquire("acme")
        #expect(first.name == "acme")
        let error = #expect(throws: CoreError.self) { try locks.acquire("acme") }
        #expect(error?.kind == .locked)
        #expect(error?.message.contains("pid \(getpid())") == true)
        _ = try locks.acquire("beta")  // another name is another lock
        first.release()
        first.release()  // releasing twice is harmless
        let again = try locks.acquire("acme")
        again.release()
    }
}
