import Foundation
import TresorCore
import TresorRepository
import TresorStore

/// A tenant repository for one test: a fresh master key, a store (in memory, or a local
/// directory removed with the value) and ``TestPolicy/small``'s sizes, opened and created.
/// `reopen()` opens it again from the store alone, for tests that must not read what the first
/// handle holds in memory.
public final class TemporaryRepository: @unchecked Sendable {
    /// Where the objects go.
    public enum Backing: Sendable {
        case memory
        case localDirectory
    }

    public let tenant: TenantID
    public let store: any Store
    public let master: MasterKey
    public let policy: Policy
    public let clock: any Clock
    public let repository: TenantRepository
    /// Scratch space for the test (restore targets, corpora); the local store lives in
    /// `directory/store` when ``Backing/localDirectory`` is chosen.
    public let directory: TempDirectory

    public init(
        tenant: TenantID = "acme", backing: Backing = .memory, policy: Policy = TestPolicy.small,
        clock: any Clock = FixedClock(Date(timeIntervalSince1970: 1_795_773_600))
    ) throws {
        self.tenant = tenant
        self.policy = policy
        self.clock = clock
        directory = TempDirectory("tresor-repo")
        switch backing {
        case .memory: store = MemoryStore(name: tenant.rawValue)
        case .localDirectory: store = try LocalStore(root: directory.sub("store"))
        }
        master = MasterKey.generate()
        repository = try TenantRepository.open(
            store: store, tenant: tenant, master: master, policy: policy.backup,
            clock: clock, create: true)
    }

    /// Opens the repository again from the store, creating nothing.
    public func reopen() throws -> TenantRepository {
        try TenantRepository.open(
            store: store, tenant: tenant, master: master, policy: policy.backup,
            clock: clock, create: false)
    }
}
