import Foundation
import TresorCatalog
import TresorCore
import TresorStore

/// What `tresor store clean` did.
public struct StoreCleanResult: Codable, Sendable, JobResult {
    public var store: String
    public var location: String
    /// What was removed: local temporaries (`file://`) or multipart uploads (S3).
    public var kind: String
    /// Only leftovers older than this were removed (the policy's `store.incomplete_upload_age`).
    public var olderThanSeconds: Double
    public var removed: Int
    public var outcome: Outcome
}

extension Installation {
    /// `tresor store clean NAME`: removes what interrupted writers left anywhere in the store
    /// (all tenants): temporaries of a local store, incomplete multipart uploads of an S3 store,
    /// once older than the policy's `store.incomplete_upload_age`, so nothing in flight on any
    /// host is touched. Objects themselves are never removed.
    public func cleanStore(name: String) throws -> StoreCleanResult {
        let record = try storeRecord(name)
        let store = try openStore(url: record.url, create: false)
        let age = policy.store.incompleteUploadAge.seconds
        return try run(
            Job(.storeClean, tenant: nil) {
                let removed = try store.abortIncompleteUploads(prefix: "", olderThan: age)
                let result = StoreCleanResult(
                    store: name, location: store.location,
                    kind: record.url.hasPrefix("file:") ? "temporary files" : "multipart uploads",
                    olderThanSeconds: age, removed: removed, outcome: .ok)
                return result
            })
    }
}
