import Foundation

/// Dedicated threads that can be waited for. The pipeline's bodies block on file I/O, C
/// libraries and network calls, so they run here and never on Swift's cooperative pool.
public final class ThreadGroup: Sendable {
    private let group = DispatchGroup()

    public init() {}

    /// Starts `body(i)` for `i` in `0..<count`, each on its own thread named `name-i`.
    public func start(_ count: Int, name: String, _ body: @escaping @Sendable (Int) -> Void) {
        for i in 0..<count {
            group.enter()
            let t = Thread { [group] in
                body(i)
                group.leave()
            }
            t.name = "\(name)-\(i)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    /// Waits until every started body has returned.
    public func wait() { group.wait() }
}

/// Runs `body(i)` for `i` in `0..<count` on `count` dedicated threads and waits for all.
public func runOnThreads(_ count: Int, name: String, _ body: @escaping @Sendable (Int) -> Void) {
    let threads = ThreadGroup()
    threads.start(count, name: name, body)
    threads.wait()
}

/// The number of cores this process may use.
public var availableCores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
