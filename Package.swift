// swift-tools-version:6.0
import PackageDescription

// Dependencies are deliberate: every one is rebuilt on each CI run. Crypto, compression, SQLite
// and PostgreSQL's client come from system libraries (OpenSSL, zstd, sqlite3, libpq) through
// system-library targets. Swift packages: the argument parser, TOMLKit (toml++) so that
// configuration and policy files are read by a full TOML 1.0 parser, and swift-mustache for the
// evidence report's HTML template (escapes every value; no dependencies of its own), swift-log
// for structured logs, swift-prometheus for the metrics file's text format, and Hummingbird
// (SwiftNIO) for the download endpoint, the costliest to build.
let package = Package(
    name: "Tresor",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tresor", targets: ["tresor"]),
        // For Benchmarks/fuzz (a separate package that fuzzes the parsers of stored and received
        // bytes with libFuzzer); nothing else uses it.
        .library(name: "TresorParsers", targets: ["TresorRepository", "TresorStore", "TresorPostgres", "TresorEvidence"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        // The download endpoint (tresor serve) only; it brings SwiftNIO and its friends, the
        // largest part of a clean build (see docs/serve.md for the cost).
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
    ],
    targets: [
        // System libraries: a module map and a shim header each, nothing else.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLibpq", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CPosix"),

        .target(name: "TresorCore", dependencies: ["TOMLKit"], resources: [.copy("Resources/policies")]),
        .target(name: "TresorCrypto", dependencies: ["TresorCore", "CCrypto"]),
        .target(name: "TresorStore", dependencies: ["TresorCore", "TresorCrypto", "CCurl"]),
        .target(name: "TresorRepository", dependencies: ["TresorCore", "TresorCrypto", "TresorStore", "CZstd", "CPosix"]),
        .target(name: "TresorDocuments", dependencies: ["TresorCore", "TresorRepository"]),
        // The narrow libpq client, shared by the replication code and the PostgreSQL catalog.
        .target(name: "TresorLibpq", dependencies: ["TresorCore", "CLibpq"]),
        .target(name: "TresorPostgres", dependencies: ["TresorCore", "TresorCrypto", "TresorStore", "TresorRepository", "TresorLibpq"]),
        .target(name: "TresorCatalog", dependencies: ["TresorCore", "CSQLite", "TresorLibpq"]),
        .target(
            name: "TresorEvidence",
            dependencies: [
                "TresorCore", "TresorCrypto", "TresorStore", .product(name: "Mustache", package: "swift-mustache"),
            ]),
        .target(name: "TresorExport", dependencies: ["TresorCore", "TresorCrypto", "TresorPostgres", "CArchive"]),
        .target(
            name: "TresorEngine",
            dependencies: [
                "TresorCore", "TresorCrypto", "TresorStore", "TresorRepository", "TresorDocuments", "TresorCatalog",
                "TresorPostgres", "TresorEvidence", "TresorExport", "CPosix",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(
            name: "TresorServer",
            dependencies: [
                "TresorCore", "TresorEngine", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "TresorCLI",
            dependencies: [
                "TresorCore", "TresorStore", "TresorRepository", "TresorDocuments", "TresorCatalog", "TresorEngine", "TresorServer", "TresorPostgres",
                "TresorEvidence", "TresorExport", "CPosix", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(name: "tresor", dependencies: ["TresorCLI"]),

        .target(name: "TresorTestSupport", dependencies: ["TresorCore", "TresorStore", "TresorRepository", "TresorPostgres"], path: "Tests/TresorTestSupport"),
        .testTarget(name: "TresorCoreTests", dependencies: ["TresorCore"]),
        .testTarget(name: "TresorCryptoTests", dependencies: ["TresorCrypto"]),
        .testTarget(name: "TresorStoreTests", dependencies: ["TresorStore", "TresorCrypto", "TresorTestSupport"]),
        .testTarget(name: "TresorRepositoryTests", dependencies: ["TresorRepository", "TresorTestSupport"]),
        .testTarget(
            name: "TresorPostgresTests", dependencies: ["TresorPostgres", "TresorRepository", "TresorCrypto", "TresorTestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(name: "TresorCatalogTests", dependencies: ["TresorCatalog", "TresorTestSupport"]),
        .testTarget(name: "TresorDocumentsTests", dependencies: ["TresorDocuments", "TresorTestSupport"]),
        .testTarget(name: "TresorEvidenceTests", dependencies: ["TresorEvidence", "TresorStore", "TresorCrypto", "TresorTestSupport"]),
        .testTarget(name: "TresorCLITests", dependencies: ["TresorCLI", "TresorEngine", "TresorCatalog", "TresorPostgres", "TresorTestSupport"]),
        .testTarget(name: "TresorServerTests", dependencies: ["TresorServer", "TresorEngine"]),
        // Jobs run through the Engine's API, without the tresor binary.
        .testTarget(
            name: "TresorEngineTests", dependencies: ["TresorEngine", "TresorTestSupport", "TresorCatalog", "TresorCore", "TresorRepository"]),
        .testTarget(name: "TresorExportTests", dependencies: ["TresorExport", "TresorTestSupport"]),
        .testTarget(
            name: "TresorIntegrationTests",
            dependencies: [
                "TresorTestSupport", "TresorStore", "TresorPostgres", "TresorEngine", "TresorEvidence", "TresorCatalog", "tresor",
            ]),
    ]
)
