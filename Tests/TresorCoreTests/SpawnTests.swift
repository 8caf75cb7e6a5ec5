import Foundation
import Testing
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

@Suite("Spawn")
struct SpawnTests {
    /// A restore stops its WAL prefetcher with SIGTERM when it fails. The prefetcher was spawned
    /// from a worker thread that had SIGTERM blocked; it inherited the blocked signal, ignored the
    /// request and kept the restore waiting until its own idle timeout (300 s).
    @Test func aChildSpawnedFromAThreadThatBlocksSIGTERMStillEndsOnSIGTERM() throws {
        let spawned = Locked<Result<pid_t, any Error>?>(nil)
        let thread = Thread {
            var block = sigset_t()
            sigemptyset(&block)
            sigaddset(&block, SIGTERM)
            sigaddset(&block, SIGINT)
            pthread_sigmask(SIG_BLOCK, &block, nil)
            spawned.withLock { $0 = Result { try Spawn.start("/bin/sleep", ["20"]) } }
        }
        thread.start()
        while spawned.withLock({ $0 == nil }) { usleep(1000) }
        let pid = try #require(try spawned.withLock { $0 }?.get())
        // Let the child reach `sleep` (a signal sent before exec is delivered after it too).
        usleep(200_000)
        #expect(kill(pid, SIGTERM) == 0)
        // Ended by the signal (128 + 15), not by running out its 20 s (0).
        #expect(Spawn.wait(pid) == 128 + SIGTERM)
    }
}
