import Foundation
import TresorCore
import TresorStore

/// Re-wraps one tenant's key envelopes in one store from a previous master key to the current
/// one. Only `keys/` objects change; no pack, index, snapshot or WAL object is read or written.
///
/// For each envelope that opens only with `previous`: the same data key is wrapped under
/// `current` as a new envelope (``KeyEnvelope/rewrapped(dataKey:master:created:)``), stored with
/// `ifAbsent`, read back and opened with `current`; only when it yields the same data key is the
/// old envelope deleted. A crash at any point therefore leaves, for every envelope, the old one,
/// the new one, or both: the tenant stays readable with one of the two keys, and a second run
/// finishes the work (an old envelope whose replacement is already stored is just deleted).
public enum KeyRotation {
    /// What one tenant's pass did.
    public struct TenantResult: Sendable, Codable {
        public var rewrapped = 0
        public var alreadyCurrent = 0
        /// Envelopes neither key opens (damaged, moved, or under a third key): left in place.
        public var problems: [String] = []
        /// Whether an envelope that opens with the current key exists after the pass.
        public var readableWithCurrent = false
    }

    /// The envelopes of `tenant` in `store` that already replace an older one under `current`,
    /// by the id they replace (`<old id>-<suffix>` replaces `<old id>`). Passed to
    /// ``rewrap(store:tenant:current:previous:clock:replacements:)`` for the tenant's other stores,
    /// so every copy of an envelope is replaced by the same bytes (one id everywhere, and
    /// `replicate` finds nothing to reconcile).
    public static func replacements(store: any Store, tenant: TenantID, current: MasterKey) throws -> [String: KeyEnvelope] {
        let layout = RepositoryLayout(tenant: tenant)
        var out: [String: KeyEnvelope] = [:]
        for object in try store.list(prefix: layout.keysPrefix) {
            let id = String(object.key.dropFirst(layout.keysPrefix.count))
            guard let dash = id.lastIndex(of: "-"),
                let envelope = try? KeyEnvelope.decode(try store.get(object.key), key: object.key),
                (try? envelope.unwrap(master: current, tenant: tenant, id: id)) != nil
            else { continue }
            // An envelope that cannot be read or opened here is simply not reused (at worst two
            // stores get different replacement ids, both valid); rewrap reports what is wrong.
            out[String(id[..<dash])] = envelope
        }
        return out
    }

    public static func rewrap(
        store: any Store, tenant: TenantID, current: MasterKey, previous: MasterKey?,
        clock: any Clock
    ) throws -> TenantResult {
        var replacements: [String: KeyEnvelope] = [:]
        return try rewrap(
            store: store, tenant: tenant, current: current, previous: previous, clock: clock,
            replacements: &replacements)
    }

    /// Re-wraps as described above; an old envelope that has an entry in `replacements` (made for
    /// another store) is replaced by that same envelope, and new replacements are added to it.
    public static func rewrap(
        store: any Store, tenant: TenantID, current: MasterKey, previous: MasterKey?,
        clock: any Clock, replacements: inout [String: KeyEnvelope]
    ) throws -> TenantResult {
        let layout = RepositoryLayout(tenant: tenant)
        var result = TenantResult()
        let listed = try store.list(prefix: layout.keysPrefix)
        // Envelopes already under the current key, by id, with their data key's fingerprint.
        var currentByID: [String: String] = [:]
        var pending: [(id: String, envelope: KeyEnvelope, dataKey: [UInt8])] = []
        for object in listed {
            let id = String(object.key.dropFirst(layout.keysPrefix.count))
            let envelope: KeyEnvelope
            do {
                envelope = try KeyEnvelope.decode(try store.get(object.key), key: object.key)
            } catch let e as RepositoryError {
                result.problems.append("\(object.key): \(e.message)")
                continue
            }
            do {
                let key = try envelope.unwrap(master: current, tenant: tenant, id: id)
                currentByID[id] = KeyEnvelope.fingerprint(dataKey: key)
                result.alreadyCurrent += 1
                continue
            } catch let e as RepositoryError where e.code == .corrupt {
                result.problems.append("\(object.key): \(e.message)")
                continue
            } catch let e as RepositoryError where e.code == .usage {
                // Not under the current key: try the previous one below.
            }
            guard let previous else {
                result.problems.append("\(object.key): opens with neither master key")
                continue
            }
            do {
                pending.append((id, envelope, try envelope.unwrap(master: previous, tenant: tenant, id: id)))
            } catch let e as RepositoryError {
                result.problems.append("\(object.key): \(e.code == .usage ? "opens with neither master key" : e.message)")
            }
        }
        for p in pending {
            let fingerprint = KeyEnvelope.fingerprint(dataKey: p.dataKey)
            // A run killed after storing the replacement and before the delete left both.
            let replaced = currentByID.contains { $0.key.hasPrefix(p.id + "-") && $0.value == fingerprint }
            if !replaced {
                let fresh = try replacements[p.id] ?? p.envelope.rewrapped(dataKey: p.dataKey, master: current, created: clock.now())
                replacements[p.id] = fresh
                let key = layout.key(fresh.id)
                try store.put(key, try fresh.encoded(), ifAbsent: true)
                let back = try KeyEnvelope.decode(try store.get(key), key: key)
                guard try back.unwrap(master: current, tenant: tenant, id: fresh.id) == p.dataKey else {
                    throw RepositoryError(.failed, "the re-wrapped envelope \(key) in \(store.location) reads back with another key; the old envelope is kept")
                }
                currentByID[fresh.id] = fingerprint
                result.rewrapped += 1
            }
            try store.delete(layout.key(p.id))
        }
        result.readableWithCurrent = !currentByID.isEmpty
        return result
    }
}
