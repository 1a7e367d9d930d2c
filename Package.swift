// swift-tools-version: 6.1
// FluxServe: FLUX.1 text-to-image engine. One target per layer (see README "Layout").
import PackageDescription

let optimised: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "FluxServe",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fluxserve", targets: ["fluxserve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // HTTP service (FluxServer). Hummingbird without its default traits: no swift-configuration to build.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Tensor, DType, Backend protocol, errors, safetensors reader/writer.
        .target(name: "FluxCore", swiftSettings: optimised),
        // CPU backend: every op in f32; the reference the GPU is tested against.
        .target(name: "FluxCPU", dependencies: ["FluxCore"], swiftSettings: optimised),
        // GPU backend: CUDA driver, NVRTC, cuBLASLt and cuDNN loaded with dlopen at run time; kernels in Kernels/*.cu.
        .target(name: "FluxCUDA", dependencies: ["FluxCore"], exclude: ["Kernels"], swiftSettings: optimised),
        // CLIP byte-level BPE and T5 SentencePiece Unigram tokenizers.
        .target(name: "FluxTokenizers", swiftSettings: optimised),
        // The networks, written once against `Backend`.
        .target(name: "FluxModel", dependencies: ["FluxCore", "FluxTokenizers"], swiftSettings: optimised),
        // The HTTP service: routes, job store (SQLite), the worker that owns the model, metrics, auth, limits.
        .target(
            name: "FluxServer",
            dependencies: [
                "FluxCore", "FluxCPU", "FluxModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("openapi.yaml")]),
        .executableTarget(
            name: "fluxserve",
            dependencies: [
                "FluxCore", "FluxCPU", "FluxCUDA", "FluxModel", "FluxTokenizers", "FluxServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimised),
        .testTarget(name: "FluxCoreTests", dependencies: ["FluxCore"]),
        .testTarget(name: "FluxCPUTests", dependencies: ["FluxCore", "FluxCPU"]),
        .testTarget(name: "FluxCUDATests", dependencies: ["FluxCore", "FluxCPU", "FluxCUDA"]),
        .testTarget(name: "FluxTokenizersTests", dependencies: ["FluxTokenizers"]),
        .testTarget(name: "FluxModelTests", dependencies: ["FluxCore", "FluxCPU", "FluxModel"]),
        .testTarget(
            name: "FluxServerTests",
            dependencies: [
                "FluxCore", "FluxModel", "FluxServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]),
    ]
)
