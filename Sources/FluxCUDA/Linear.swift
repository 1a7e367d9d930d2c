import FluxCore
import Foundation

/// cuBLASLt with its handle, workspace and one cached plan (descriptors + chosen algorithm) per shape and epilogue.
final class MatmulEngine: @unchecked Sendable {
    static let workspaceBytes = 32 << 20
    let blas: CuBLASLt
    let handle: CuBLASLt.Handle
    let workspace: CUDAStorage
    private var plans: [CuBLASLt.Shape: CuBLASLt.Plan] = [:]
    /// Shapes cuBLASLt had no algorithm for; they run on the fallback kernel.
    private var unsupported: Set<CuBLASLt.Shape> = []

    let profiler: OpProfiler

    init(allocator: DeviceAllocator, profiler: OpProfiler) throws {
        self.profiler = profiler
        blas = try CuBLASLt()
        handle = try blas.createHandle()
        workspace = try allocator.allocate(MatmulEngine.workspaceBytes)
    }

    func run(_ plan: CuBLASLt.Plan, a: CUdeviceptr, b: CUdeviceptr, bias: CUdeviceptr?, d: CUdeviceptr,
             beta: Float = 0, stream: CUhandle) throws
    {
        let s = plan.shape
        let products = Double(s.batch) * Double(s.m) * Double(s.n) * Double(s.k)
        let operands = Double(s.batch) * Double(s.m * s.k + s.k * s.n + s.m * s.n * (s.outputF32 ? 2 : 1)) * 2
        try profiler.measure("gemm \(s.m)x\(s.n)x\(s.k)" + (s.batch > 1 ? " ×\(s.batch)" : ""), flops: 2 * products,
                             bytes: operands, stream: stream) {
            try blas.matmul(plan, handle: handle, a: a, b: b, bias: bias, d: d, beta: beta,
                            workspace: workspace.pointer, workspaceSize: MatmulEngine.workspaceBytes, stream: stream)
        }
    }

    /// The plan for a shape, or nil when cuBLASLt offers no algorithm for it.
    func plan(_ key: CuBLASLt.Shape) throws -> CuBLASLt.Plan? {
        if let plan = plans[key] { return plan }
        if unsupported.contains(key) { return nil }
        do {
            let plan = try CuBLASLt.Plan(blas, handle: handle, shape: key, workspaceLimit: MatmulEngine.workspaceBytes)
            plans[key] = plan
            return plan
        } catch {
            unsupported.insert(key)
            return nil
        }
    }
}

extension CUDABackend {
    /// `y = act(x·wᵀ + bias)`. cuBLASLt computes the product with the bias fused in its epilogue, and GELU (tanh) too
    /// when that is the activation; other activations run as one more pass (`bias_activation_bf16`). Without
    /// cuBLASLt, or for a shape it rejects, the tiled kernel of `gemm.cu` does all of it.
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor {
        let op = "linear"
        try expect(weight.rank == 2, op, "weight", weight.shape, "(N, K)")
        let (n, k) = (weight.shape[0], weight.shape[1])
        try expect(x.rank >= 1 && x.dim(-1) == k, op, "x", x.shape, "(..., \(k))")
        if let bias { try expect(bias.shape == [n], op, "bias", bias.shape, "[\(n)]") }
        return try locked {
            let m = x.count / max(k, 1)
            let xp = try pointer(x, op), wp = try pointer(weight, op), bp = try optionalPointer(bias, op)
            let (out, y) = try empty(Array(x.shape.dropLast()) + [n], op)
            guard m > 0, n > 0 else { return out }
            let act = Activation.allCases.firstIndex(of: activation) ?? 0
            if k == 0 {
                try driver.check(driver.cuMemsetD16Async(y, 0, m * n, stream), "cuMemsetD16Async")
                try launchElements("elementwise", "bias_activation_bf16", count: m * n,
                                   [.pointer(y), .pointer(bp), .long(m * n), .int(n), .int(act)])
                return out
            }
            // Epilogues that round once: none, bias, GELU(tanh), GELU(tanh)+bias. Other activations: the product in
            // f32, then one pass adds the bias, applies the activation and rounds.
            let fusedGelu = activation == .geluTanh
            let inF32 = activation != .identity && !fusedGelu
            let epilogue: CuBLASLt.Epilogue = switch (bias != nil && !inF32, fusedGelu) {
            case (false, false): .none
            case (true, false): .bias
            case (false, true): .gelu
            case (true, true): .geluBias
            }
            let shape = CuBLASLt.Shape(m: n, n: m, k: k, transA: true, lda: k, ldb: k, ldd: n, epilogue: epilogue,
                                       outputF32: inF32)
            if let engine = matmul, let plan = try engine.plan(shape) {
                if inF32 {
                    let product = try allocator.allocate(m * n * 4)
                    try engine.run(plan, a: wp, b: xp, bias: nil, d: product.pointer, stream: stream)
                    try launchElements("elementwise", "bias_activation_f32_bf16", count: m * n,
                                       [.pointer(product.pointer), .pointer(bp), .pointer(y), .long(m * n), .long(1),
                                        .int(n), .int(act)])
                } else {
                    try engine.run(plan, a: wp, b: xp, bias: bias == nil ? nil : bp, d: y, stream: stream)
                }
                return out
            }
            try gemmKernel(a: xp, b: wp, bias: bp, y: y, m: m, n: n, k: k, sam: k, sak: 1, sbn: k, sbk: 1, sym: n, syn: 1,
                           biasPerRow: false, activation: act)
            return out
        }
    }
}

extension CUDABackend {
    /// `linear` over the concatenation of `parts` along the last axis, as one cuBLASLt product per part into the same
    /// output: the first with the bias epilogue, the rest accumulating with β = 1 (each part's block of weight
    /// columns is read in place, leading dimension ΣKᵢ). The output is bf16 between the products, so a partial sum
    /// is rounded once more than by one product. Other activations, no cuBLASLt, or a shape it rejects: the
    /// concatenation and one `linear`.
    public func linear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?, activation: Activation) throws
        -> Tensor
    {
        let op = "linear"
        let (leading, widths) = try FusedOpShapes.linearConcatenating(parts, weight: weight, bias: bias)
        let (n, k) = (weight.shape[0], weight.shape[1]), m = leading.reduce(1, *)
        func concatenated() throws -> Tensor {
            try linear(try concat(parts, axis: -1), weight: weight, bias: bias, activation: activation)
        }
        guard parts.count > 1, activation == .identity, let engine = matmul, m > 0, n > 0, widths.allSatisfy({ $0 > 0 })
        else { return try concatenated() }
        var offsets: [Int] = [], offset = 0
        for w in widths { offsets.append(offset); offset += w }
        let plans = try locked {
            try widths.enumerated().map { i, width -> CuBLASLt.Plan? in
                // Part i's weight columns start offsets[i]·2 bytes into the weight.
                try engine.plan(CuBLASLt.Shape(m: n, n: m, k: width, transA: true, lda: k, ldb: width, ldd: n,
                                               epilogue: i == 0 && bias != nil ? .bias : .none,
                                               alignment: byteAlignment(offsets[i] * 2)))
            }
        }
        guard plans.allSatisfy({ $0 != nil }) else { return try concatenated() }
        return try locked {
            let wp = try pointer(weight, op), bp = try optionalPointer(bias, op)
            let sources = try parts.map { try pointer($0, op) }
            let (out, y) = try empty(leading + [n], op)
            for (i, plan) in plans.enumerated() {
                guard let plan else { continue }
                try engine.run(plan, a: wp + CUdeviceptr(offsets[i] * 2), b: sources[i],
                               bias: i == 0 && bias != nil ? bp : nil, d: y, beta: i == 0 ? 0 : 1, stream: stream)
            }
            return out
        }
    }
}

extension CUDABackend {
    /// The strided fallback GEMM of `gemm.cu`: `y[m·sym + n·syn] = act(Σ a[m·sam + k·sak]·b[n·sbn + k·sbk] + bias)`,
    /// bias indexed by m (`biasPerRow`) or by n.
    func gemmKernel(a: CUdeviceptr, b: CUdeviceptr, bias: CUdeviceptr, y: CUdeviceptr, m: Int, n: Int, k: Int,
                    sam: Int, sak: Int, sbn: Int, sbk: Int, sym: Int, syn: Int, biasPerRow: Bool, activation: Int) throws
    {
        try launch("gemm", "gemm_bf16_strided", grid: ((n + 63) / 64, (m + 63) / 64, 1), block: (256, 1, 1),
                   [.pointer(a), .pointer(b), .pointer(bias), .pointer(y), .int(m), .int(n), .int(k), .long(sam),
                    .long(sak), .long(sbn), .long(sbk), .long(sym), .long(syn), .int(biasPerRow ? 1 : 0),
                    .int(biasPerRow ? 0 : 1), .int(activation)])
    }
}

/// The alignment of a pointer `bytes` into a device allocation: the largest power of two dividing it, at most 256
/// (allocations are 256-byte aligned).
func byteAlignment(_ bytes: Int) -> Int { bytes == 0 ? 256 : min(256, bytes & -bytes) }
