/// The kernel sources, embedded by SwiftPM (`.embedInCode` in Package.swift: `PackageResources.<file>_<ext>`), so
/// that the static binary needs no resource files. One entry per `Kernels/*.cu` module and `*.cuh` header; the test
/// `KernelModulesTests` fails when a file in `Kernels/` is missing here.
enum KernelSources {
    /// Headers handed to NVRTC by include name.
    static let headers: [(name: String, text: String)] = [
        ("common.cuh", text(PackageResources.common_cuh)),
        ("fp8.cuh", text(PackageResources.fp8_cuh)),
    ]

    /// Modules by name (the `.cu` file's base name), each compiled to one CUBIN.
    static let modules: [(name: String, text: String)] = [
        ("attention", text(PackageResources.attention_cu)),
        ("attention_inputs", text(PackageResources.attention_inputs_cu)),
        ("elementwise", text(PackageResources.elementwise_cu)),
        ("gemm", text(PackageResources.gemm_cu)),
        ("image", text(PackageResources.image_cu)),
        ("layout", text(PackageResources.layout_cu)),
        ("normalization", text(PackageResources.normalization_cu)),
        ("quantize", text(PackageResources.quantize_cu)),
        ("random", text(PackageResources.random_cu)),
        ("reduction", text(PackageResources.reduction_cu)),
        ("softmax", text(PackageResources.softmax_cu)),
    ]

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
