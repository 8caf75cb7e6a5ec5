import Foundation
import TresorCore
import TresorStore

/// The behaviour every `Store` promises, as one suite that each implementation runs
/// (local directory now, S3 later). Returns the failures; empty means conformant.
public enum StoreConformance {
    public static func run(_ store: any Store, prefix: String = "conformance") -> [String] {
        var failures: [String] = []
        func check(_ ok: Bool, _ what: String) { if !ok { failures.append(what) } }
        do {
            let key = "\(prefix)/a/object-1"
            let payload = Array((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            check(try store.head(key) == nil, "head of an absent key is nil")
            do {
                _ = try store.get(key)
                failures.append("get of an absent key throws notFound")
            } catch let e as StoreError {
                check(e.code == .notFound, "get of an absent key throws notFound, got \(e.code)")
            }
            try store.put(key, payload)
            check(try store.get(key) == payload, "read-after-write returns the same bytes")
            check(try store.head(key)?.size == payload.count, "head reports the size")
            check(try store.get(key, range: 10..<20) == Array(payload[10..<20]), "ranged get returns the range")
            check(try store.get(key, range: 99_990..<100_000) == Array(payload[99_990...]), "ranged get at the end")
            // Replace, and create-if-absent.
            try store.put(key, [1, 2, 3])
            check(try store.get(key) == [1, 2, 3], "put replaces")
            check(try store.put(key, [9], ifAbsent: true) == false, "ifAbsent put refuses an existing key")
            check(try store.get(key) == [1, 2, 3], "ifAbsent put leaves the existing object")
            check(try store.put("\(prefix)/a/object-2", [7], ifAbsent: true) == true, "ifAbsent put creates")
            try store.put("\(prefix)/b/object-3", [])
            check(try store.get("\(prefix)/b/object-3") == [], "empty objects round-trip")
            try store.put("\(prefix)-other/x", [1])
            let listed = try store.list(prefix: "\(prefix)/").map(\.key)
            check(
                listed == ["\(prefix)/a/object-1", "\(prefix)/a/object-2", "\(prefix)/b/object-3"],
                "list returns exactly the keys under the prefix, sorted: \(listed)")
            let partial = try store.list(prefix: "\(prefix)/a/obj").map(\.key)
            check(partial == ["\(prefix)/a/object-1", "\(prefix)/a/object-2"], "list matches a partial last segment: \(partial)")
            check(try store.list(prefix: "\(prefix)/zzz/").isEmpty, "list of an empty prefix is empty")
            try store.delete("\(prefix)/a/object-2")
            try store.delete("\(prefix)/a/object-2")
            check(try store.head("\(prefix)/a/object-2") == nil, "delete removes, and is idempotent")
            for bad in ["", "../escape", "a//b", "/abs", "a/./b", "sp ace"] {
                do {
                    try store.put(bad, [1])
                    failures.append("invalid key '\(bad)' is refused")
                } catch {}
            }
            // Concurrent writers of distinct keys all land.
            let concurrentFailures = Locked(0)
            DispatchQueue.concurrentPerform(iterations: 32) { i in
                do {
                    try store.put("\(prefix)/c/\(i)", Array(repeating: UInt8(i), count: 1000 + i))
                } catch {
                    concurrentFailures.withLock { $0 += 1 }
                }
            }
            check(concurrentFailures.current == 0, "concurrent puts succeed")
            check(try store.list(prefix: "\(prefix)/c/").count == 32, "all concurrent puts are listed")
            check(try store.get("\(prefix)/c/7") == Array(repeating: 7, count: 1007), "a concurrent put's content is intact")
            for o in try store.list(prefix: "\(prefix)") { try store.delete(o.key) }
        } catch {
            failures.append("unexpected error: \(error)")
        }
        return failures
    }
}
