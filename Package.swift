// swift-tools-version:6.1
import PackageDescription

// Dependencies flow one way: SyncCore ← SyncStorage ← SyncServer / SyncClient ← ClinicSyncCLI ← clinic-sync.
let package = Package(
    name: "ClinicSync",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "clinic-sync", targets: ["clinic-sync"]),
        .library(name: "SyncCore", targets: ["SyncCore"]),
        .library(name: "SyncClient", targets: ["SyncClient"]),
        .library(name: "SyncServer", targets: ["SyncServer"]),
        .library(name: "SyncSimulator", targets: ["SyncSimulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // zlib straight from the system: SyncCore stays free of NIO (see protocol/SPEC.md, "Compression").
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),
        .target(name: "SyncCore", dependencies: ["CZlib"]),
        .target(
            name: "SyncStorage",
            dependencies: [
                "SyncCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "SyncServer",
            dependencies: [
                "SyncCore", "SyncStorage",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "SyncClient",
            dependencies: [
                "SyncCore", "SyncStorage",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Deterministic simulation of terminals and a server over an in-memory transport (issue 5).
        .target(
            name: "SyncSimulator",
            dependencies: [
                "SyncCore", "SyncStorage", "SyncServer", "SyncClient",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The SQLite session extension, only as the benchmark's baseline.
        .target(name: "CSQLiteSession", linkerSettings: [.linkedLibrary("sqlite3")]),
        .target(
            name: "SyncBench",
            dependencies: [
                "SyncCore", "SyncStorage", "SyncServer", "SyncClient", "CSQLiteSession",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(
            name: "ClinicSyncCLI",
            dependencies: [
                "SyncCore", "SyncStorage", "SyncServer", "SyncClient", "SyncSimulator", "SyncBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .executableTarget(name: "clinic-sync", dependencies: ["ClinicSyncCLI"]),
        // The checks the fuzz harnesses make, as a library so `swift test` replays found crashes without libFuzzer.
        .target(
            name: "FuzzChecks",
            dependencies: [
                "SyncCore", "SyncStorage", "SyncServer", "SyncClient",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "SyncCoreTests", dependencies: ["SyncCore"]),
        // Helpers more than one test target needs (a real full disk).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "SyncServerTests",
            dependencies: [
                "SyncCore", "SyncStorage", "SyncServer", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SyncSimulatorTests",
            dependencies: [
                "SyncCore", "SyncServer", "SyncClient", "SyncSimulator",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SyncClientTests",
            dependencies: [
                "SyncCore", "SyncStorage", "SyncServer", "SyncClient", "ClinicSyncCLI", "FuzzChecks", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
    ]
)

// libFuzzer harnesses (tools/fuzz): only an `@_cdecl("LLVMFuzzerTestOneInput")` entry point, no main, so
// they link only with `--sanitize fuzzer`. Declared only when asked, so a plain `swift build`/`swift test` never sees them.
if Context.environment["CLINICSYNC_FUZZ"] == "1" {
    package.targets += [
        .executableTarget(name: "fuzz-frames", dependencies: ["FuzzChecks"], path: "Fuzz/fuzz-frames"),
        .executableTarget(name: "fuzz-endpoint", dependencies: ["FuzzChecks"], path: "Fuzz/fuzz-endpoint"),
        .executableTarget(name: "fuzz-client", dependencies: ["FuzzChecks"], path: "Fuzz/fuzz-client"),
    ]
}
