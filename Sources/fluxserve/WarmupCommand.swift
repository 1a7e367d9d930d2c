import ArgumentParser
import FluxCUDA
import FluxCore
import Foundation

/// `fluxserve warmup [--device cuda]`: compiles every GPU kernel now (or loads it from the on-disk cache), so the
/// first request pays nothing; prints what each module took.
struct Warmup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile (or load from the cache) every GPU kernel ahead of time and print the timings.")

    @OptionGroup var device: DeviceOptions

    func run() throws {
        try reportingErrors {
            let backend = try device.makeBackend()
            guard let cuda = backend as? CUDABackend else {
                print("\(backend.name): nothing to compile")
                return
            }
            print("device: \(cuda.name) \(cuda.deviceName), sm \(cuda.computeCapability.major)."
                  + "\(cuda.computeCapability.minor), \(cuda.multiprocessorCount) SMs")
            print("compiler: \(cuda.compilerDescription); matmul: \(cuda.matmulDescription)")
            print("attention: \(cuda.attentionDescription)")
            let start = Date()
            let reports = try cuda.warmKernels()
            for r in reports {
                let ms = String(format: "%8.1f ms", r.milliseconds)
                print("\(r.module.padding(toLength: 14, withPad: " ", startingAt: 0)) \(r.source.padding(toLength: 8, withPad: " ", startingAt: 0)) \(ms)  \(r.cubinBytes) bytes")
            }
            let total = Date().timeIntervalSince(start) * 1000
            let memory = try cuda.memoryInfo()
            print(String(format: "%d modules in %.1f ms; device memory %@ free of %@", reports.count, total,
                         formatBytes(memory.free), formatBytes(memory.total)))
        }
    }
}
