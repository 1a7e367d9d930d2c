import FluxCore
import Testing

@testable import FluxCUDA

/// What the GPU tests need, probed once (on first use) through FluxCUDA's own `LibrarySearch` with default paths:
/// the standard CUDA folders, then the loader path. Each value is nil when the library loads, else why not (one line).
/// Tests that need a library carry `.requires(...)`, so `swift test` reports them as skipped with that reason instead
/// of counting a silent `return` as a pass.
enum GPUAvailability {
    /// A CUDA device usable through libcuda (driver loaded, `cuDeviceGetCount` > 0).
    static let device: String? = CUDABackend.unavailableReason()
    /// libnvrtc (no GPU needed).
    static let nvrtc: String? = missing { _ = try NVRTC() }
    /// libcublasLt (no GPU needed).
    static let cuBLASLt: String? = missing { _ = try CuBLASLt() }
    /// libcudnn (no GPU needed).
    static let cuDNN: String? = missing { _ = try CuDNN() }

    private static func missing(_ load: () throws -> Void) -> String? {
        do {
            try load()
            return nil
        } catch {
            return "\(error)"
        }
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only when `missing` is nil (see `GPUAvailability`); otherwise it is skipped with the reason.
    static func requires(_ what: String, _ missing: String?) -> Self {
        .enabled(if: missing == nil, Comment(rawValue: "needs \(what): \(missing ?? "")"))
    }
}
