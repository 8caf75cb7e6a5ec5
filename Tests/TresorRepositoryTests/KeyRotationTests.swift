import Foundation
import Testing
import TresorCore
import TresorCrypto
import TresorStore
import TresorTestSupport

@testable import TresorRepository

@Suite struct KeyRotationTests {
    /// Makes `count` tenants, each with one index object, under `master`; returns the digest of
    /// every object that is not a key envelope.
    func populate(_ store: any Store, tenants: [TenantID], master: MasterKey) throws -> [String: ObjectID] {
        for (i, t) in tenants.enumerated() {
            let repo = try openRepository(store, tenant: t, master: master)
            let pack = IndexFile.Pack(id: SHA256.hash(Array("pack \(i)".utf8)), size: 10 + i, entries: [])
            try repo.writeIndex(IndexFile(packs: [pack]), level: 3)
        }
        return try dataDigests(store)
    }

    func dataDigests(_ store: any Store) throws -> [String: ObjectID] {
        var out: [String: ObjectID] = [:]
        for o in try store.list(prefix: "tenants/") where !o.key.contains("/keys/") {
            out[o.key] = SHA256.hash(try store.get(o.key))
        }
        return out
    }

    func opens(_ store: any Store, _ tenant: TenantID, _ masters: [MasterKey]) -> Bool {
        guard
            let repo = try? TenantRepository.open(
                store: store, tenant: tenant, master: masters[0],
                previousMasters: Array(masters.dropFirst()), policy: smallPolicy,
                clock: SystemClock(), create: false),
            let index = try? repo.loadIndex()
        else { return false }
        return index.packSizes.count == 1
    }

    /// A rotation killed at any store write (each put and delete of an envelope in turn) leaves
    /// every tenant readable with the two keys, and a second run completes it: then the new key
    /// alone opens every tenant, and no data object changed.
    @Test func aRotationInterruptedAtAnyWriteLeavesEveryTenantReadableAndARerunCompletes() throws {
        let tenants: [TenantID] = ["a", "b", "c"]
        // Two writes (put of the new envelope, delete of the old) per tenant.
        for failAt in 0..<(2 * tenants.count) {
            let dir = TempDirectory()
            let local = try LocalStore(root: dir.url)
            let old = MasterKey.generate(), new = MasterKey.generate()
            let before = try populate(local, tenants: tenants, master: old)
            var writes = 0
            var crashed = false
            for t in tenants where !crashed {
                let store: any Store = WriteLimitStore(local, allowed: failAt - writes)
                do {
                    let r = try KeyRotation.rewrap(store: store, tenant: t, current: new, previous: old, clock: SystemClock())
                    writes += 2 * r.rewrapped
                } catch {
                    crashed = true
                }
            }
            #expect(crashed, "fail point \(failAt) was reached")
            for t in tenants {
                #expect(opens(local, t, [new, old]), "after a crash at write \(failAt), tenant \(t) opens with one of the two keys")
            }
            for t in tenants {
                let r = try KeyRotation.rewrap(store: local, tenant: t, current: new, previous: old, clock: SystemClock())
                #expect(r.problems.isEmpty && r.readableWithCurrent)
                #expect(try local.list(prefix: "tenants/\(t)/keys/").count == 1, "one envelope per tenant after the rerun")
                #expect(opens(local, t, [new]), "tenant \(t) opens with the new key alone")
                #expect(!opens(local, t, [old]), "the old key opens nothing of tenant \(t)")
            }
            #expect(try dataDigests(local) == before, "no data object was rewritten")
        }
    }

    /// An envelope neither key opens is reported and left in place; the good ones are rotated.
    @Test func anEnvelopeNeitherKeyOpensIsReportedAndKept() throws {
        let dir = TempDirectory()
        let store = try LocalStore(root: dir.url)
        let old = MasterKey.generate(), new = MasterKey.generate()
        _ = try populate(store, tenants: ["a"], master: old)
        let stranger = try KeyEnvelope.wrap(dataKey: SecureRandom.bytes(32), tenant: "a", master: MasterKey.generate(), created: Date())
        try store.put("tenants/a/keys/\(stranger.id)", try stranger.encoded())
        let r = try KeyRotation.rewrap(store: store, tenant: "a", current: new, previous: old, clock: SystemClock())
        #expect(r.rewrapped == 1)
        #expect(r.problems.count == 1 && r.problems[0].contains(stranger.id))
        #expect(try store.head("tenants/a/keys/\(stranger.id)") != nil)
        #expect(opens(store, "a", [new]))
    }
}

/// Passes on `allowed` puts and deletes, then fails every later one, like a process killed there.
final class WriteLimitStore: StoreWrapper, @unchecked Sendable {
    let base: any Store
    private let remaining: Locked<Int>

    init(_ base: any Store, allowed: Int) {
        self.base = base
        remaining = Locked(allowed)
    }

    private func spend() throws {
        let ok = remaining.withLock { r -> Bool in
            r -= 1
            return r >= 0
        }
        if !ok { throw StoreError(.io, "killed") }
    }

    func put(_ key: String, bytes: UnsafeRawBufferPointer, options: PutOptions) throws -> Bool {
        try spend()
        return try base.put(key, bytes: bytes, options: options)
    }

    /// One write per key, so a batch can be cut off in its middle.
    func delete(keys: [String]) throws {
        for key in keys {
            try spend()
            try base.delete(key)
        }
    }
}
