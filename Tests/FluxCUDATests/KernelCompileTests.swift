import FluxCore
import Foundation
import Testing

@testable import FluxCUDA

/// Every kernel module compiles with NVRTC for Hopper (sm_90a) and the oldest GPU the project cares about. Needs only
/// libnvrtc (no GPU), in the standard folders or on the loader path; reported as skipped without it.
@Suite struct KernelCompileTests {
    @Test(.requires("libnvrtc", GPUAvailability.nvrtc)) func everyModuleCompiles() throws {
        let nvrtc = try NVRTC()
        for architecture in ["sm_90a", "sm_80"] {
            for module in KernelSources.modules {
                let cubin = try nvrtc.compile(source: module.text, name: "\(module.name).cu",
                                              headers: KernelSources.headers,
                                              options: ["--gpu-architecture=\(architecture)", "--std=c++17"])
                #expect(cubin.count > 1000, "\(module.name) for \(architecture)")
                #expect(cubin.starts(with: [0x7F, 0x45, 0x4C, 0x46]), "\(module.name): an ELF cubin")
            }
        }
    }
}
