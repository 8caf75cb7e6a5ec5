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
