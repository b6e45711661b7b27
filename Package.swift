// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "WideEP",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "wide-ep", targets: ["wide-ep"]),
        .library(name: "WideEPCore", targets: ["WideEPCore"]),
        .library(name: "WideEPRuntime", targets: ["WideEPRuntime"]),
        .library(name: "wideep", type: .dynamic, targets: ["WideEPC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        // Pure Swift: configs, routing reference, placement, statistics, planners, split, metrics.
        .target(
            name: "WideEPCore",
            dependencies: [
                .product(name: "Collections", package: "swift-collections"),
                .product(name: "RealModule", package: "swift-numerics"),
            ]
        ),
        // Traffic generators and trace/stats/placement I/O.
        .target(name: "WideEPWorkload", dependencies: ["WideEPCore", "Yams"]),
        // Backend-neutral runtime: MoELayer, Engine, OnlineBalancer, WeightMigrator, protocols.
        .target(name: "WideEPRuntime", dependencies: ["WideEPCore", "WideEPWorkload"]),
        // CPU kernels and the ThreadCommunicator (the reference backend).
        .target(
            name: "WideEPCPU",
            dependencies: ["WideEPCore", "WideEPRuntime", .product(name: "Numerics", package: "swift-numerics")]
        ),
        // dlopen bindings to the CUDA driver, NVRTC, cuBLAS(Lt) and NCCL. No CUDA needed at build time.
        .target(name: "CUDADriver"),
        // CUDA kernels (NVRTC), cuBLAS GEMMs and communicators.
        .target(
            name: "WideEPCUDA",
            dependencies: ["CUDADriver", "WideEPCore", "WideEPRuntime", "WideEPCPU"]
        ),
        // Multi-process launch and rendezvous: env detection, TCP store, rank supervision.
        .target(name: "WideEPDistributed"),
        // C ABI (libwideep.so) for Python and other hosts.
        .target(name: "WideEPC", dependencies: ["WideEPCore"]),
        .executableTarget(
            name: "wide-ep",
            dependencies: [
                "WideEPCore", "WideEPWorkload", "WideEPRuntime", "WideEPCPU", "WideEPCUDA", "CUDADriver", "WideEPDistributed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "WideEPTestSupport", dependencies: ["WideEPCore", "WideEPWorkload"]),
        .testTarget(
            name: "WideEPCoreTests",
            dependencies: [
                "WideEPCore", "WideEPTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(name: "WideEPWorkloadTests", dependencies: ["WideEPWorkload", "WideEPTestSupport"]),
        .testTarget(
            name: "WideEPRuntimeTests",
            dependencies: [
                "WideEPRuntime", "WideEPCPU", "WideEPTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(name: "WideEPDistributedTests", dependencies: ["WideEPDistributed"]),
        .testTarget(name: "WideEPCUDATests", dependencies: ["WideEPCUDA", "CUDADriver", "WideEPCore", "WideEPRuntime"]),
        .testTarget(name: "WideEPCLITests", dependencies: ["wide-ep", "WideEPCore", "WideEPWorkload", "WideEPTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
