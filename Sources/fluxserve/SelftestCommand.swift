import ArgumentParser
import FluxCPU
import FluxCUDA
import FluxCore
import Foundation

/// `fluxserve selftest [--device cuda]`: every Backend op on the chosen device against the CPU backend, on seeded
/// random inputs of awkward shapes (`BackendConformance`). One line per case, then `N passed, M failed`; exit 1 if any
/// failed.
struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every backend op on a device against the CPU reference (one line per case).")

    @OptionGroup var device: DeviceOptions

    @Option(help: "Seed of the random inputs.")
    var seed: UInt64 = 0x5EED

    @Option(help: "Only these ops (comma-separated Backend method names, e.g. linear,attention).")
    var only: String?

    @Flag(help: "On CUDA, also run the linear, conv2d and attention cases on the fallback kernels (gemm.cu, attention.cu) instead of cuBLASLt and cuDNN.")
    var fallbackKernels = false

    @Flag(help: "Also time a few ops at FLUX shapes (4608 joint tokens, 24 heads × 128) on the device.")
    var timings = false

    func run() throws {
        let ops = only.map { Set($0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }) }
        let backend: any Backend = try reportingErrors {
            if let cuda = try device.makeBackend() as? CUDABackend {
                // Poisoned outputs: an element a kernel forgets to write shows up as NaN.
                var options = cuda.options
                options.poisonOutputs = true
                let poisoned = try CUDABackend(options: options)
                print("device: \(poisoned.name) \(poisoned.deviceName), sm \(poisoned.computeCapability.major)."
                      + "\(poisoned.computeCapability.minor), \(poisoned.multiprocessorCount) SMs")
                print("compiler: \(poisoned.compilerDescription); matmul: \(poisoned.matmulDescription)")
                print("attention: \(poisoned.attentionDescription)")
                return poisoned
            }
            return try device.makeBackend()
        }
        var results = BackendConformance.run(on: backend, seed: seed, only: ops)
        if fallbackKernels, let cuda = backend as? CUDABackend {
            let kernel = try reportingErrors {
                var options = cuda.options
                (options.poisonOutputs, options.matmul, options.attention) = (true, .kernel, .kernel)
                return try CUDABackend(options: options)
            }
            let kernelOps: Set = ["linear", "conv2d", "attention"]
            results += BackendConformance.run(on: kernel, seed: seed, only: (ops ?? kernelOps).intersection(kernelOps)).map {
                BackendConformance.Result(op: $0.op + "[kernel]", detail: $0.detail, error: $0.error,
                                          threshold: $0.threshold, passed: $0.passed, note: $0.note)
            }
        }
        let opWidth = max(10, results.map(\.op.count).max() ?? 0)
        let detailWidth = max(10, results.map(\.detail.count).max() ?? 0)
        for r in results {
            let status = r.passed ? "PASS" : "FAIL"
            let error = r.error.isFinite ? String(format: "%.2e", r.error) : "inf"
            var line = "\(status)  \(r.op.padding(toLength: opWidth, withPad: " ", startingAt: 0))  "
                + "\(r.detail.padding(toLength: detailWidth, withPad: " ", startingAt: 0))  err \(error)"
                + " (limit \(String(format: "%.0e", r.threshold)))"
            if let note = r.note { line += "  \(note)" }
            print(line)
        }
        if timings {
            try reportingErrors {
                try printTimings(on: backend)
                if let cuda = backend as? CUDABackend {
                    var options = cuda.options
                    (options.matmul, options.attention) = (.kernel, .kernel)
                    let kernel = try CUDABackend(options: options)
                    print("fallback kernels (gemm.cu, attention.cu):")
                    try printTimings(on: kernel, only: ["linear 4608x3072x3072 +bias", "attention (1, 4608, 24, 128)",
                                                        "conv2d 3x3 (1, 128, 512, 512) -> 128 +bias"])
                }
            }
        }
        if let cuda = backend as? CUDABackend { print("upload: \(cuda.uploadDescription)") }
        let failed = results.filter { !$0.passed }.count
        print("\(results.count - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode.failure }
    }
}

/// Median wall time of `body` over `repeats` runs after one warm-up, waiting for the device around each run.
private func medianMilliseconds(_ backend: any Backend, repeats: Int = 10, _ body: () throws -> Tensor) throws -> Double {
    _ = try body()
    try backend.synchronize()
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try body()
        try backend.synchronize()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    return times.sorted()[times.count / 2]
}

/// A few ops at the FLUX transformer's shapes, with the FLOP rate of the matrix products and attention.
private func printTimings(on backend: any Backend, only: Set<String>? = nil) throws {
    var rng = SystemRandomNumberGenerator()
    func random(_ shape: [Int]) throws -> Tensor {
        try backend.upload(HostTensor((0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &rng) },
                                      shape: shape))
    }
    let tokens = 4608, dim = 3072
    let x = try random([1, tokens, dim]), w = try random([dim, dim]), b = try random([dim])
    let wMLP = try random([4 * dim, dim]), bMLP = try random([4 * dim])
    let q = try random([1, tokens, 24, 128]), k = try random([1, tokens, 24, 128]), v = try random([1, tokens, 24, 128])
    let shift = try random([1, dim]), scale = try random([1, dim])
    let cosines = try random([tokens, 64]), sines = try random([tokens, 64])
    func report(_ name: String, _ ms: @autoclosure () throws -> Double, flops: Double? = nil) rethrows {
        guard only?.contains(name) ?? true else { return }
        let ms = try ms()
        let rate = flops.map { String(format: "  %.0f TFLOP/s", $0 / (ms * 1e-3) / 1e12) } ?? ""
        print("time  \(name.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%8.3f ms", ms))\(rate)")
    }
    try report("linear 4608x3072x3072 +bias", try medianMilliseconds(backend) {
        try backend.linear(x, weight: w, bias: b) }, flops: 2.0 * Double(tokens * dim * dim))
    try report("linear 4608x12288x3072 +bias geluTanh", try medianMilliseconds(backend) {
        try backend.linear(x, weight: wMLP, bias: bMLP, activation: .geluTanh) }, flops: 8.0 * Double(tokens * dim * dim))
    try report("attention (1, 4608, 24, 128)", try medianMilliseconds(backend, repeats: 3) {
        try backend.attention(q: q, k: k, v: v, scale: 1 / Float(128).squareRoot()) },
        flops: 4.0 * 24 * Double(tokens) * Double(tokens) * 128)
    try report("modulatedLayerNorm (1, 4608, 3072)", try medianMilliseconds(backend) {
        try backend.modulatedLayerNorm(x, shift: shift, scale: scale, eps: 1e-6) })
    try report("rmsNorm (1, 4608, 24, 128)", try medianMilliseconds(backend) { try backend.rmsNorm(q, weight: nil, eps: 1e-6) })
    let txtQKV = try random([1, 512, 3 * dim]), imgQKV = try random([1, tokens - 512, 3 * dim])
    let headScale = try random([128])
    let streams = [txtQKV, imgQKV].map { QKVProjection(qkv: $0, queryScale: headScale, keyScale: headScale) }
    try report("attentionInputs (1, 512 + 4096, 24, 128)", try medianMilliseconds(backend) {
        try backend.attentionInputs(streams, heads: 24, eps: 1e-6, cos: cosines, sin: sines).v })
    try report("gatedAdd (1, 4608, 3072)", try medianMilliseconds(backend) { try backend.gatedAdd(x, x, gate: shift) })
    try report("activation geluTanh (1, 4608, 3072)", try medianMilliseconds(backend) { try backend.activation(x, .geluTanh) })
    // The VAE decoder's largest shapes (1024² image): 3×3 convs at 128 channels, GroupNorm+SiLU, mid-block attention.
    let image = try random([1, 128, 512, 512]), kernel3 = try random([128, 128, 3, 3]), channelBias = try random([128])
    let ones = try random([128])
    try report("conv2d 3x3 (1, 128, 512, 512) -> 128 +bias", try medianMilliseconds(backend, repeats: 5) {
        try backend.conv2d(image, weight: kernel3, bias: channelBias, stride: 1, padding: .all(1)) },
        flops: 2.0 * 128 * 128 * 9 * 512 * 512)
    try report("groupNorm 32 groups silu (1, 128, 512, 512)", try medianMilliseconds(backend, repeats: 5) {
        try backend.groupNorm(image, groups: 32, weight: ones, bias: channelBias, eps: 1e-6, activation: .silu) })
    let vq = try random([1, 4096, 1, 512])
    try report("attention (1, 4096, 1, 512) VAE mid-block", try medianMilliseconds(backend, repeats: 3) {
        try backend.attention(q: vq, k: vq, v: vq, scale: 1 / Float(512).squareRoot()) },
        flops: 4.0 * 4096 * 4096 * 512)
}
