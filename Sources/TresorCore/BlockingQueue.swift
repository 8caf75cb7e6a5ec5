import Foundation

/// A bounded first-in-first-out queue between threads. `push` blocks while the queue is full, `pop`
/// blocks while it is empty; after `close()` pushes are refused and pops drain what is left and
/// then return nil. This is what keeps the pipeline's memory bounded: a fast producer waits for
/// slow consumers instead of buffering the whole input.
public final class BlockingQueue<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    /// A ring of `capacity` slots; a popped slot is cleared at once, so the queue never keeps a
    /// consumed element (a 16 MiB pack, say) alive.
    private var ring: [Element?]
    private var head = 0
    private var count = 0
    private var closed = false
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        ring = Array(repeating: nil, count: capacity)
    }

    /// Adds an element, waiting for room. Returns false (and drops it) when the queue is closed.
    @discardableResult
    public func push(_ element: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !closed && count >= capacity { condition.wait() }
        if closed { return false }
        ring[(head + count) % capacity] = element
        count += 1
        condition.broadcast()
        return true
    }

    /// Takes the oldest element, waiting for one; nil once closed and empty.
    public func pop() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while !closed && count == 0 { condition.wait() }
        if count == 0 { return nil }
        let e = ring[head].take()!
        head = (head + 1) % capacity
        count -= 1
        condition.broadcast()
        return e
    }

    /// Refuses further pushes and wakes every waiter.
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

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

/// A value shared between threads, guarded by a lock.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    public var current: Value { withLock { $0 } }
}

/// The number of cores this process may use.
public var availableCores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
