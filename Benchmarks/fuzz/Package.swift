// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets for the parsers that read stored or received bytes. A package of its own
// (with its own .build) so that `swift build` and `swift test` of Tresor never build it: it
// needs `-sanitize=fuzzer`. Build and run with Benchmarks/fuzz.sh.
let package = Package(
    name: "TresorFuzz",
    dependencies: [.package(name: "Tresor", path: "../..")],
    targets: [
        .executableTarget(name: "tresor-fuzz", dependencies: [.product(name: "TresorParsers", package: "Tresor")]),
    ]
)
