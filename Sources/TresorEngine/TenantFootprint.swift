import Foundation
import TresorCatalog
import TresorCore
import TresorRepository

/// Every place one tenant's data can live, in one value: deletion walks it, the sweeper checks
/// it, and it is the one place that knows the layout of the home for a tenant.
///
/// ```
/// store S, for S in {primary, offsite, stores with a region approval}: tenants/T/ (keys/ first)
/// catalog: rows of tenants, tenant_doc_roots, region_approvals, runs that name T
/// HOME/pg/T/                 access.json, wal.key (the WAL key), s3-credentials
/// HOME/spool/pg/T/           prefetched WAL
/// HOME/cache/S/tenants/T/    cached index objects and snapshot manifests, per store S
/// HOME/locks/T.lock          the tenant's run lock
/// HOME/locks/tick-KIND-T.lock tick's claims of the tenant's jobs
/// HOME/scratch/T/            scratch space of restores, drills and exports
/// HOME/exports/T/            exports kept under the home
/// HOME/secrets/pg/T.pgpass   the DSN's password
/// replication slot           PostgresAccess.defaultSlot(T) on the tenant's server
/// ```
/// Document roots are the tenant's live folders, not copies Tresor made: they are not listed.
public struct TenantFootprint: Codable, Sendable, Equatable {
    /// Why a store is listed. Stored (in a deletion's plan) and printed as the raw value.
    public enum StoreRole: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
        /// The tenant's own store.
        case primary
        /// The store its backups are replicated to.
        case offsite
        /// A store outside its region that an approval allowed.
        case regionApproval = "region-approval"

        public var description: String { rawValue }
    }

    /// What a local path of the tenant holds. Stored (in a deletion's plan), printed and named in
    /// a deletion's `removed` (`path:KIND`) as the raw value.
    public enum PathKind: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
        /// `HOME/pg/T/`: access.json, the WAL key, the PostgreSQL user's S3 credentials.
        case pg
        /// `HOME/spool/pg/T/`: prefetched WAL.
        case spool
        /// `HOME/cache/S/tenants/T/`: cached index objects and manifests of store S.
        case cache
        /// `HOME/locks/…`: the tenant's run lock and tick's claims.
        case lock
        /// `HOME/scratch/T/`.
        case scratch
        /// `HOME/exports/T/`.
        case exports
        /// `HOME/secrets/pg/T.pgpass`: the DSN's password.
        case secrets

        public var description: String { rawValue }
    }

    /// One store that may hold the tenant's objects, and why it is listed.
    public struct StorePlace: Codable, Sendable, Equatable {
        public var name: String
        public var url: String
        public var role: StoreRole
        /// `tenants/T/`: everything of the tenant in this store.
        public var prefix: String
        /// `tenants/T/keys/`: the key envelopes crypto-shredding destroys first.
        public var keysPrefix: String
    }

    /// One local file or directory of the tenant under the home.
    public struct PathPlace: Codable, Sendable, Equatable {
        public var kind: PathKind
        public var path: String
    }

    public var tenant: String
    public var stores: [StorePlace]
    public var paths: [PathPlace]
    /// `HOME/pg/T/wal.key`: destroyed with the key envelopes.
    public var walKey: String
    /// The replication slot `pg stream` uses for the tenant.
    public var slot: String
    /// The tenant's database server, when it has one. Holds no password (that is in the
    /// `secrets` path) but may name a host: never printed.
    public var pgDSN: String?
    /// When the tenant's contract ended, as the catalog said when the footprint was taken: the
    /// deletion certificate names it after the tenant row is gone.
    public var contractEnd: Date?

    /// The tenant's footprint in `home`, from its catalog record and the catalog's stores.
    /// A store named by the tenant but missing from the catalog is an error: a place would be
    /// left out silently otherwise.
    public static func of(_ tenant: TenantRecord, catalog: any Catalog, home: Home) throws -> TenantFootprint {
        let id = try tenant.id
        var names: [(String, StoreRole)] = [(tenant.store, .primary)]
        if let o = tenant.offsiteStore { names.append((o, .offsite)) }
        for a in try catalog.regionApprovals(tenant: tenant.name) { names.append((a.store, .regionApproval)) }
        let layout = RepositoryLayout(tenant: id)
        var stores: [StorePlace] = []
        for (name, role) in names where !stores.contains(where: { $0.name == name }) {
            guard let record = try catalog.store(named: name) else {
                throw CoreError.failed("store '\(name)' of tenant '\(tenant.name)' is not in the catalog", hint: "tresor store list")
            }
            stores.append(StorePlace(name: name, url: record.url, role: role, prefix: layout.prefix, keysPrefix: layout.keysPrefix))
        }
        let root = home.root.path
        var paths = [
            PathPlace(kind: .pg, path: PostgresAccess.directory(home, id).path),
            PathPlace(kind: .spool, path: PostgresAccess.spool(home, id).path),
        ]
        for s in stores { paths.append(PathPlace(kind: .cache, path: "\(root)/cache/\(s.name)/\(layout.prefix.dropLast())")) }
        paths += [
            PathPlace(kind: .lock, path: home.locks.appendingPathComponent("\(tenant.name).lock").path)
        ]
        // The claims `tick` took for the tenant's jobs: empty files, but named after the tenant.
        paths += TickPlanner.tenantJobKinds.map {
            PathPlace(kind: .lock, path: home.locks.appendingPathComponent(TickJobSpec($0, tenant: id).claimName + ".lock").path)
        }
        paths.append(PathPlace(kind: .lock, path: home.locks.appendingPathComponent(TickJobSpec.tenantClaimName(id) + ".lock").path))
        paths += [
            PathPlace(kind: .scratch, path: "\(root)/scratch/\(tenant.name)"),
            PathPlace(kind: .exports, path: "\(root)/exports/\(tenant.name)"),
            PathPlace(kind: .secrets, path: "\(root)/secrets/pg/\(tenant.name).pgpass"),
        ]
        return TenantFootprint(
            tenant: tenant.name, stores: stores, paths: paths,
            walKey: PostgresAccess.directory(home, id).appendingPathComponent("wal.key").path,
            slot: PostgresAccess.defaultSlot(id), pgDSN: tenant.pgDSN,
            contractEnd: tenant.contractEnd)
    }

    /// Where the tenant's scratch directories live: the sweeper looks there for leftovers
    /// named after a tenant.
    public static func scratchRoot(_ home: Home) -> URL { home.root.appendingPathComponent("scratch") }
}
