// swift-tools-version:6.0
import PackageDescription

// C kernels are always compiled optimised (even in debug builds) so tests stay fast;
// per-function `target` attributes + runtime dispatch pick AVX-512/AVX2/NEON paths.
// -ffp-contract=off: dequantisation rounds d * q before adding the offset, as ggml and gguf-py do (bit-equal rows)
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno", "-ffp-contract=off"])]

let package = Package(
    name: "PersonaScope",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "persona", targets: ["persona"]),
        .library(name: "PersonaCore", targets: ["PersonaCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.30.0"),
    ],
    targets: [
        .target(name: "CPersonaKernels", cSettings: kernelFlags),
        .target(name: "PersonaTensor", dependencies: ["CPersonaKernels"]),
        .target(name: "PersonaFormats", dependencies: ["PersonaTensor"]),
        .target(name: "PersonaTokenizers", dependencies: ["PersonaFormats"]),
        .target(name: "PersonaModels", dependencies: ["PersonaTensor", "PersonaFormats", "PersonaTokenizers"]),
        .target(name: "PersonaGeneration", dependencies: ["PersonaModels", "PersonaTokenizers"]),
        .target(name: "PersonaRuns"),
        .target(name: "PersonaHash"),
        // Finds the shipped resources beside the binary, appended to it, or in the source tree.
        .target(name: "PersonaResources", dependencies: ["PersonaHash"]),
        // The network edge (Hub downloads, the OpenAI-compatible judge): SwiftNIO, so no libcurl at run time.
        .target(name: "PersonaHTTP", dependencies: [.product(name: "AsyncHTTPClient", package: "async-http-client")]),
        .target(name: "PersonaHub", dependencies: ["PersonaHash", "PersonaHTTP"]),
        .target(name: "PersonaCore", dependencies: ["PersonaGeneration", "PersonaModels", "PersonaFormats", "PersonaRuns", "PersonaHash", "PersonaHTTP", "PersonaResources"],
                resources: [.copy("Resources/traits")]),
        .target(name: "PersonaServer", dependencies: [
            "PersonaRuns", "PersonaResources",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ], resources: [.copy("Resources/Dashboard")]),
        .executableTarget(name: "persona", dependencies: [
            "PersonaCore", "PersonaServer", "PersonaRuns", "PersonaHub", "PersonaResources", "PersonaGeneration", "PersonaModels", "PersonaTokenizers", "PersonaFormats",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], resources: [.copy("Examples")]),
        // Helpers every test target shares (paths, subprocesses, the fake Hub, the fuzz mutator). It imports
        // XCTest, so it is built only for tests: build the tool with `swift build --product persona`.
        .target(name: "PersonaTestSupport", dependencies: ["PersonaFormats"], path: "Tests/PersonaTestSupport"),
        .testTarget(name: "PersonaTensorTests", dependencies: ["PersonaTensor", "PersonaTestSupport"]),
        .testTarget(name: "PersonaFormatsTests", dependencies: ["PersonaFormats", "PersonaHash", "PersonaTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PersonaTokenizersTests", dependencies: ["PersonaTokenizers", "PersonaTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PersonaModelsTests", dependencies: ["PersonaModels", "PersonaGeneration", "PersonaHash", "PersonaTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PersonaHubTests", dependencies: ["PersonaHub", "PersonaHash", "PersonaTestSupport"]),
        .testTarget(name: "PersonaRunsTests", dependencies: ["PersonaRuns", "PersonaTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PersonaCoreTests", dependencies: ["PersonaCore", "PersonaResources", "PersonaTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PersonaServerTests", dependencies: [
            "PersonaServer", "PersonaRuns", "PersonaTestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        // Tests that run the built `persona` binary end to end (the user's journey, the CLI contracts).
        .testTarget(name: "PersonaCLITests", dependencies: [
            "PersonaTestSupport", "PersonaCore", "PersonaHub", "PersonaModels", "PersonaGeneration", "PersonaTokenizers",
            "PersonaFormats",
        ]),
    ],
    swiftLanguageModes: [.v5]
)
