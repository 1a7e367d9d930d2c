import FluxCore
import Foundation

/// cuBLASLt with its handle, workspace and one cached plan (descriptors + chosen algorithm) per shape and epilogue.
///
/// With tuning on (`GemmTuneSettings`), a plan holds the heuristic's top candidates, and the first product of a shape
/// first times each of them on the call's own A, B and bias into a scratch D (the real D untouched, so accumulating
/// calls stay right), keeps the fastest, then runs the call. The timed runs are never part of a profile.
final class MatmulEngine: @unchecked Sendable {
    static let workspaceBytes = 32 << 20
    let blas: CuBLASLt
    let handle: CuBLASLt.Handle
    let workspace: CUDAStorage
    private let allocator: DeviceAllocator
    private var plans: [CuBLASLt.Shape: CuBLASLt.Plan] = [:]
    /// Shapes cuBLASLt had no algorithm for (the caller falls back), with cuBLASLt's reason, in the order met.
    private var unsupported: Set<CuBLASLt.Shape> = []
    private(set) var refusals: [String] = []
    /// `CUDABackend.Options.gemmTuning`.
    private let tuneSettings: GemmTuneSettings
    /// One entry per shape whose candidates were timed, in the order they were.
    private(set) var tuningReport: [GemmTuningEntry] = []

    let profiler: OpProfiler
    /// fp8 products accumulate without periodic promotion to f32 (cuBLASLt's FAST_ACCUM):
    /// `CUDABackend.Options.fp8FastAccumulation`.
    let fp8FastAccumulation: Bool

    init(allocator: DeviceAllocator, profiler: OpProfiler, tuning: GemmTuneSettings, fp8FastAccumulation: Bool,
         search: LibrarySearch) throws {
        self.profiler = profiler
        self.allocator = allocator
        self.fp8FastAccumulation = fp8FastAccumulation
        tuneSettings = tuning
        blas = try CuBLASLt(search: search)
        handle = try blas.createHandle()
        workspace = try allocator.allocate(MatmulEngine.workspaceBytes)
    }

    func run(_ plan: CuBLASLt.Plan, a: CUdeviceptr, b: CUdeviceptr, bias: CUdeviceptr?, d: CUdeviceptr,
             beta: Float = 0, scales: MatmulScales? = nil, stream: CUhandle) throws
    {
        if plan.needsChoice { tune(plan, a: a, b: b, bias: bias, beta: beta, scales: scales, stream: stream) }
        let s = plan.shape
        let products = Double(s.batch) * Double(s.m) * Double(s.n) * Double(s.k)
        let inputBytes = s.fp8 ? 1 : 2
        let operands = Double(s.batch) * Double((s.m * s.k + s.k * s.n) * inputBytes
                                                + s.m * s.n * (s.outputF32 ? 4 : 2))
        try profiler.measure("gemm \(s.fp8 ? "fp8 " : "")\(s.m)x\(s.n)x\(s.k)" + (s.batch > 1 ? " ×\(s.batch)" : ""),
                             flops: 2 * products, bytes: operands, stream: stream) {
            try blas.matmul(plan, handle: handle, a: a, b: b, bias: bias, d: d, beta: beta, scales: scales,
                            workspace: workspace.pointer, workspaceSize: MatmulEngine.workspaceBytes, stream: stream)
        }
    }

    /// The plan for a shape, or nil when cuBLASLt offers no algorithm for it.
    func plan(_ key: CuBLASLt.Shape) throws -> CuBLASLt.Plan? {
        if let plan = plans[key] { return plan }
        if unsupported.contains(key) { return nil }
        let settings = tuneSettings
        let flops = 2 * Double(key.batch) * Double(key.m) * Double(key.n) * Double(key.k)
        do {
            let plan = try CuBLASLt.Plan(blas, handle: handle, shape: key, workspaceLimit: MatmulEngine.workspaceBytes,
                                         candidates: settings.candidates(flops: flops),
                                         scalePlaceholder: workspace.pointer)
            plans[key] = plan
            return plan
        } catch {
            unsupported.insert(key)
            refusals.append("\(error)")
            return nil
        }
    }

    /// Times every candidate of `plan` on the call's operands into a scratch output and chooses the fastest
    /// (`GemmTuning.choose`), or takes candidate `pick` untimed. The runs are queued ahead of the real call on the
    /// same stream, outside `profiler.measure`. A failure leaves the heuristic's first and is noted in the report,
    /// never thrown: the real call that follows reports a broken device itself.
    private func tune(_ plan: CuBLASLt.Plan, a: CUdeviceptr, b: CUdeviceptr, bias: CUdeviceptr?, beta: Float,
                      scales: MatmulScales?, stream: CUhandle)
    {
        plan.needsChoice = false
        let settings = tuneSettings
        guard settings.enabled || settings.pick != nil else { return }
        let s = plan.shape, count = plan.candidateCount, repeats = settings.repeats
        let flops = 2 * Double(s.batch) * Double(s.m) * Double(s.n) * Double(s.k)
        var times = [Double?](repeating: nil, count: count), note: String?
        var start = DispatchTime.now().uptimeNanoseconds
        if let pick = settings.pick {
            note = "pick=\(pick), untimed"
        } else {
            do {
                // The work queued so far first, so that the time reported is the tuning's own.
                try allocator.driver.check(allocator.driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
                start = DispatchTime.now().uptimeNanoseconds
                times = try timeCandidates(plan, repeats: repeats, a: a, b: b, bias: bias, beta: beta, scales: scales,
                                           stream: stream)
            } catch {
                note = "\(error)"
            }
        }
        let chosen = settings.pick.map { min($0, count - 1) } ?? GemmTuning.choose(times, margin: settings.margin)
        plan.choose(chosen)
        let name = s.label + (beta != 0 ? " β=1" : "")
        let algorithms = (0..<count).map { blas.describe(plan.algo($0)) }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        let entry = GemmTuningEntry(shape: name, flops: flops, milliseconds: times, algorithms: algorithms,
                                    chosen: chosen, tuningMs: elapsed, note: note)
        tuningReport.append(entry)
        if settings.log { FileHandle.standardError.write(Data((entry.line + "\n").utf8)) }
    }

    /// Each candidate's median time over `repeats` runs, after one untimed run of every candidate (which loads its
    /// kernels); nil for a candidate cuBLASLt refused. Rounds go over all candidates in turn, so a clock still rising
    /// at start-up slows every candidate alike. One wait for the device at the end.
    private func timeCandidates(_ plan: CuBLASLt.Plan, repeats: Int, a: CUdeviceptr, b: CUdeviceptr,
                                bias: CUdeviceptr?, beta: Float, scales: MatmulScales?, stream: CUhandle) throws
        -> [Double?]
    {
        let driver = allocator.driver, count = plan.candidateCount
        let scratch = try allocator.allocate(GemmTuning.outputBytes(plan.shape))
        // Zeros, so β = 1 runs read numbers rather than whatever the block last held.
        try driver.check(driver.cuMemsetD8Async(scratch.pointer, 0, scratch.byteCount, stream), "cuMemsetD8Async")
        func runCandidate(_ i: Int) -> Bool {
            (try? blas.matmul(plan, candidate: i, handle: handle, a: a, b: b, bias: bias, d: scratch.pointer,
                              beta: beta, scales: scales, workspace: workspace.pointer,
                              workspaceSize: MatmulEngine.workspaceBytes, stream: stream)) != nil
        }
        var works = (0..<count).map(runCandidate)
        var events: [CUhandle] = []
        defer { for event in events { _ = driver.cuEventDestroy(event) } }
        for _ in 0..<(2 * count * repeats) {
            var event: CUhandle?
            try driver.check(driver.cuEventCreate(&event, 0), "cuEventCreate")
            guard let event else { throw TensorError.backend("cuda: cuEventCreate returned no event") }
            events.append(event)
        }
        // Events 2·(round·count + i) and the one after bracket round `round` of candidate i.
        for round in 0..<repeats {
            for i in 0..<count where works[i] {
                let slot = 2 * (round * count + i)
                try driver.check(driver.cuEventRecord(events[slot], stream), "cuEventRecord")
                if !runCandidate(i) { works[i] = false }
                try driver.check(driver.cuEventRecord(events[slot + 1], stream), "cuEventRecord")
            }
        }
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
        return try (0..<count).map { i -> Double? in
            guard works[i] else { return nil }
            let samples = try (0..<repeats).map { round -> Double in
                let slot = 2 * (round * count + i)
                var ms: Float = 0
                try driver.check(driver.cuEventElapsedTime(&ms, events[slot], events[slot + 1]), "cuEventElapsedTime")
                return Double(ms)
            }
            return GemmTuning.median(samples)
        }
    }
}

extension CUDABackend {
    /// Per product shape whose cuBLASLt candidates were timed, the times and the choice (empty without cuBLASLt, with
    /// tuning off (`--gemm-tune 0`), or before the first products).
    public var matmulTuning: [GemmTuningEntry] { (try? locked { matmul?.tuningReport ?? [] }) ?? [] }
    /// Why cuBLASLt refused each product shape it had no algorithm for (those ran another way).
    public var matmulRefusals: [String] { (try? locked { matmul?.refusals ?? [] }) ?? [] }
}

extension CUDABackend {
    /// `y = act(x·wᵀ + bias)`. cuBLASLt computes the product with the bias fused in its epilogue, and GELU (tanh) too
    /// when that is the activation; other activations run as one more pass (`bias_activation_bf16`). Without
    /// cuBLASLt, or for a shape it rejects, the tiled kernel of `gemm.cu` does all of it.
    public func uncheckedLinear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor {
        let op = "linear"
        let (n, k) = (weight.shape[0], weight.shape[1])
        return try locked {
            let m = x.count / max(k, 1)
            let xp = try pointer(x, op), wp = try pointer(weight, op), bp = try optionalPointer(bias, op)
            let (out, y) = try empty(Array(x.shape.dropLast()) + [n], op)
            guard m > 0, n > 0 else { return out }
            if k == 0 { try zeroProduct(y, bias: bp, m: m, n: n, activation: activation); return out }
            let (epilogue, inF32) = CuBLASLt.Epilogue.linear(bias: bias != nil, activation: activation)
            let shape = CuBLASLt.Shape(m: n, n: m, k: k, transA: true, lda: k, ldb: k, ldd: n, epilogue: epilogue,
                                       outputF32: inF32)
            if let engine = matmul, let plan = try engine.plan(shape) {
                try runLinear(engine, plan, weight: wp, x: xp, bias: bp, y: y, m: m, n: n, activation: activation)
                return out
            }
            let act = Activation.allCases.firstIndex(of: activation) ?? 0
            try gemmKernel(a: xp, b: wp, bias: bp, y: y, m: m, n: n, k: k, sam: k, sak: 1, sbn: k, sbk: 1, sym: n, syn: 1,
                           biasPerRow: false, activation: act)
            return out
        }
    }
}

extension CuBLASLt.Epilogue {
    /// The epilogue of a `linear` product, and whether the product must come out in f32 first. Epilogues that round
    /// once: none, bias, GELU(tanh), GELU(tanh)+bias. Other activations: the product in f32, then one pass adds the
    /// bias, applies the activation and rounds.
    static func linear(bias: Bool, activation: Activation) -> (CuBLASLt.Epilogue, inF32: Bool) {
        let fusedGelu = activation == .geluTanh
        let inF32 = activation != .identity && !fusedGelu
        let epilogue: CuBLASLt.Epilogue = switch (bias && !inF32, fusedGelu) {
        case (false, false): .none
        case (true, false): .bias
        case (false, true): .gelu
        case (true, true): .geluBias
        }
        return (epilogue, inF32)
    }
}

extension CUDABackend {
    /// `y (m, n) = act(x · weightᵀ + bias)` through a `linear` plan (made with `Epilogue.linear`): one product, or a
    /// product in f32 and the `bias_activation_f32_bf16` pass. `scales` for fp8 plans.
    func runLinear(_ engine: MatmulEngine, _ plan: CuBLASLt.Plan, weight: CUdeviceptr, x: CUdeviceptr,
                   bias: CUdeviceptr, y: CUdeviceptr, m: Int, n: Int, activation: Activation,
                   scales: MatmulScales? = nil) throws
    {
        guard plan.shape.outputF32 else {
            try engine.run(plan, a: weight, b: x, bias: bias == 0 ? nil : bias, d: y, scales: scales, stream: stream)
            return
        }
        let product = try allocator.allocate(m * n * 4)
        try engine.run(plan, a: weight, b: x, bias: nil, d: product.pointer, scales: scales, stream: stream)
        try launchElements("elementwise", "bias_activation_f32_bf16", count: m * n,
                           [.pointer(product.pointer), .pointer(bias), .pointer(y), .long(m * n), .long(1), .int(n),
                            .int(Activation.allCases.firstIndex(of: activation) ?? 0)])
    }

    /// A product over K = 0: zeros, then bias and activation.
    func zeroProduct(_ y: CUdeviceptr, bias: CUdeviceptr, m: Int, n: Int, activation: Activation) throws {
        try driver.check(driver.cuMemsetD16Async(y, 0, m * n, stream), "cuMemsetD16Async")
        try launchElements("elementwise", "bias_activation_bf16", count: m * n,
                           [.pointer(y), .pointer(bias), .long(m * n), .int(n),
                            .int(Activation.allCases.firstIndex(of: activation) ?? 0)])
    }
}

extension CUDABackend {
    /// Fused (overrides `FusedOps.linear(concatenating:)`): `linear` over the concatenation of `parts` along the last
    /// axis, as one cuBLASLt product per part into the same output: the first with the bias epilogue, the rest
    /// accumulating with β = 1 (each part's block of weight columns is read in place, leading dimension ΣKᵢ). The
    /// output is bf16 between the products, so a partial sum is rounded once more than by one product. Other
    /// activations, no cuBLASLt, or a shape it rejects: the composition (the concatenation and one `linear`).
    public func uncheckedLinear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?, activation: Activation)
        throws -> Tensor
    {
        let op = "linear"
        let leading = Array(parts[0].shape.dropLast()), widths = parts.map { $0.dim(-1) }
        let (n, k) = (weight.shape[0], weight.shape[1]), m = leading.reduce(1, *)
        func concatenated() throws -> Tensor {
            try FusedOps.linear(on: self, concatenating: parts, weight: weight, bias: bias, activation: activation)
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
