import Foundation
import TresorCatalog
import TresorCore
import TresorRepository
import TresorStore

/// What `tresor keys rotate-master` did.
public struct KeyRotationResult: Codable, Sendable, JobResult {
    /// `rotate` or `finish`.
    public var step: String
    /// Whether this run made a new master key (false when it resumed an unfinished rotation).
    public var newKey: Bool
    public var stores: Int
    /// Tenant repositories (tenant × store) that hold key envelopes.
    public var repositories: Int
    public var rewrapped: Int
    public var alreadyCurrent: Int
    /// Envelopes neither key opens, left in place; each makes the outcome `problem_found`.
    public var problems: [String]
    /// Whether the previous key file was removed (`--finish` with every repository readable).
    public var previousKeyRemoved: Bool
    public var seconds: Double
    public var outcome: Outcome
}

extension Installation {
    /// Where a rotation keeps the previous master key (until `--finish`) and stages the next one.
    func masterKeyFiles() throws -> (current: URL, previous: URL, next: URL) {
        guard case .file(let p) = config.masterKey else {
            throw CoreError.usage(
                "the master key comes from master_key_command: tresor cannot rotate it",
                hint: "rotate it in your secret store, or set keys.master_key_file")
        }
        let current = home.path(p)
        return (current, URL(fileURLWithPath: current.path + ".previous"), URL(fileURLWithPath: current.path + ".next"))
    }

    /// The master key of a rotation in progress (`<master key file>.previous`), if any: openers
    /// try it after the current key, so a tenant is readable at every point of a rotation.
    public func previousMasterKeys() throws -> [MasterKey] {
        guard case .file = config.masterKey else { return [] }
        let previous = try masterKeyFiles().previous
        guard FileManager.default.fileExists(atPath: previous.path) else { return [] }
        guard let text = try? String(contentsOf: previous, encoding: .utf8) else {
            throw CoreError.usage(
                "cannot read the previous master key \(previous.path)",
                hint: "a key rotation is in progress: restore the file, then tresor keys rotate-master")
        }
        return [try MasterKey(text: text)]
    }

    /// `tresor keys rotate-master [--finish]`.
    ///
    /// Without `finish`: makes a new master key (unless a rotation is already in progress, which
    /// it resumes), keeps the old one as `<key file>.previous`, and re-wraps every tenant's key
    /// envelopes in every store (``KeyRotation``). The key files change in this order, each step
    /// written to a temporary, fsynced and renamed: new key to `.next`; old key to `.previous`;
    /// `.next` renamed over the key file. No envelope is wrapped under the new key before it is
    /// the key file, and the old key stays until `--finish`, so a crash anywhere leaves every
    /// tenant readable with one of the two. Running it again completes an interrupted rotation.
    ///
    /// With `finish`: runs the same pass (idempotent), then removes `.previous` only when every
    /// repository has an envelope that opens with the current key.
    public func rotateMasterKey(finish: Bool) throws -> KeyRotationResult {
        let files = try masterKeyFiles()
        let lock = try locks.acquire("master-key-rotation")
        defer { withExtendedLifetime(lock) {} }
        let start = Date()
        let fm = FileManager.default
        var newKey = false
        if finish {
            guard fm.fileExists(atPath: files.previous.path) else {
                throw CoreError.usage("no master key rotation is in progress", hint: "tresor keys rotate-master")
            }
        } else if !fm.fileExists(atPath: files.previous.path) {
            // `.next` without `.previous` is a key no envelope was ever wrapped with: replace it.
            try writeKeyFile(files.next, MasterKey.generate().hexForKeyFile + "\n")
            try writeKeyFile(files.previous, try String(contentsOf: files.current, encoding: .utf8))
            newKey = true
        }
        if fm.fileExists(atPath: files.next.path) {
            // `.previous` is durable: the swap can happen (again, if a crash interrupted it).
            guard rename(files.next.path, files.current.path) == 0 else {
                throw CoreError.failed("cannot rename \(files.next.path) to \(files.current.path): \(String(cString: strerror(errno)))")
            }
            try syncDirectory(files.current.deletingLastPathComponent())
        }
        let current = try MasterKey(text: try String(contentsOf: files.current, encoding: .utf8))
        let previous = try previousMasterKeys().first
        return try run(
            Job(.keyRotation, tenant: nil) { [self] in
                var result = KeyRotationResult(
                    step: finish ? "finish" : "rotate", newKey: newKey, stores: 0, repositories: 0,
                    rewrapped: 0, alreadyCurrent: 0, problems: [], previousKeyRemoved: false,
                    seconds: 0, outcome: .ok)
                var unreadable: [String] = []
                let stores = try catalog.stores().map { ($0.name, try openStore(url: $0.url, create: false)) }
                result.stores = stores.count
                for tenant in try catalog.tenants() {
                    let id = try tenant.id
                    // One replacement per envelope, whichever store it is in (an offsite copy holds
                    // the same envelopes as the primary).
                    var replacements: [String: KeyEnvelope] = [:]
                    for (_, store) in stores {
                        replacements.merge(try KeyRotation.replacements(store: store, tenant: id, current: current)) { a, _ in a }
                    }
                    for (name, store) in stores {
                        let t = try KeyRotation.rewrap(
                            store: store, tenant: id, current: current, previous: previous,
                            clock: clock, replacements: &replacements)
                        if t.rewrapped + t.alreadyCurrent + t.problems.count == 0 { continue }
                        result.repositories += 1
                        result.rewrapped += t.rewrapped
                        result.alreadyCurrent += t.alreadyCurrent
                        result.problems += t.problems.map { "store \(name): \($0)" }
                        if !t.readableWithCurrent { unreadable.append("tenant '\(tenant.name)' in store \(name)") }
                    }
                }
                if finish {
                    if unreadable.isEmpty {
                        guard unlink(files.previous.path) == 0 else {
                            throw CoreError.failed("cannot remove \(files.previous.path): \(String(cString: strerror(errno)))")
                        }
                        try syncDirectory(files.previous.deletingLastPathComponent())
                        result.previousKeyRemoved = true
                    } else {
                        result.problems += unreadable.map { "\($0) has no envelope under the current master key: the previous key is kept" }
                    }
                }
                result.seconds = Date().timeIntervalSince(start)
                result.outcome = result.problems.isEmpty ? .ok : .problemFound
                return result
            })
    }

    /// Writes a key file (0600) through a temporary, fsynced, then renamed into place.
    private func writeKeyFile(_ url: URL, _ text: String) throws {
        let tmp = url.path + ".tmp"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError.failed("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let ok = write(fd, bytes, bytes.count) == bytes.count && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, url.path) == 0 else {
            unlink(tmp)
            throw CoreError.failed("cannot write \(url.path)")
        }
        try syncDirectory(url.deletingLastPathComponent())
    }

    private func syncDirectory(_ dir: URL) throws {
        let fd = Glibc.open(dir.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CoreError.failed("cannot open \(dir.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw CoreError.failed("cannot fsync \(dir.path)") }
    }
}
