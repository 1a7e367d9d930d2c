import FluxCore

/// cuDNN with its handle and one SDPA plan per shape; shapes it cannot run are remembered and go to the kernel.
final class SDPAEngine: @unchecked Sendable {
    struct Shape: Hashable {
        let batch: Int, heads: Int, sq: Int, sk: Int, dim: Int
    }

    let dnn: CuDNN
    let handle: OpaquePointer
    /// Shapes whose engines have been timed: the fastest.
    private var chosen: [Shape: CuDNN.SDPAPlan] = [:]
    /// Shapes seen but not yet run: every engine config that finalized, in cuDNN's order.
    private var candidates: [Shape: [CuDNN.SDPAPlan]] = [:]
    private var unsupported: Set<Shape> = []
    /// One line per timed shape (engines and their times), for reports.
    private(set) var choices: [String] = []

    init(stream: CUhandle, search: LibrarySearch) throws {
        dnn = try CuDNN(search: search)
        handle = try dnn.createHandle(stream: stream)
    }

    /// The plan to run, or every candidate when they have not been timed yet; nil when cuDNN has no engine.
    func plans(_ shape: Shape) -> [CuDNN.SDPAPlan]? {
        if let plan = chosen[shape] { return [plan] }
        if let plans = candidates[shape] { return plans }
        if unsupported.contains(shape) { return nil }
        do {
            let plans = try CuDNN.SDPAPlan.candidates(dnn, handle: handle, batch: shape.batch, heads: shape.heads,
                                                      sq: shape.sq, sk: shape.sk, dim: shape.dim)
            if plans.count == 1 { chosen[shape] = plans[0] } else { candidates[shape] = plans }
            return plans
        } catch {
            unsupported.insert(shape)
            return nil
        }
    }

    func choose(_ plan: CuDNN.SDPAPlan, for shape: Shape, report: String) {
        chosen[shape] = plan
        candidates[shape] = nil
        choices.append(report)
    }
}

extension CUDABackend {
    /// The cuDNN attention engines timed so far, one line per shape.
    public var attentionTuning: [String] { (try? locked { sdpa?.choices ?? [] }) ?? [] }

    /// Largest head dimension the attention kernel takes (16 output columns per lane of a warp; the FLUX VAE's
    /// mid-block attention is one head of 512).
    static let maxAttentionHeadDim = 512

    /// Exact softmax attention. Without bias or causal mask (FLUX's joint attention) on cuDNN's fused flash attention
    /// when it takes the shape; otherwise (T5's bias, CLIP's causal mask) as two cuBLASLt batched products around
    /// `softmax.cu` when the scores are small enough to hold (`scoresByteLimit`); else, or when neither library
    /// runs, the kernel of `attention.cu` (online softmax, f32 math).
    public func uncheckedAttention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor?, causal: Bool) throws
        -> Tensor
    {
        let op = "attention"
        let (batch, sq, heads, dim, sk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3], k.shape[1])
        try expect(dim <= CUDABackend.maxAttentionHeadDim, op, "q", q.shape,
                   "head dim ≤ \(CUDABackend.maxAttentionHeadDim) on \(name)")
        return try locked {
            let qp = try pointer(q, op), kp = try pointer(k, op), vp = try pointer(v, op)
            let bp = try optionalPointer(bias, op)
            let (out, y) = try empty(q.shape, op)
            guard q.count > 0 else { return out }
            if sk == 0 {
                try driver.check(driver.cuMemsetD16Async(y, 0, q.count, stream), "cuMemsetD16Async")
                return out
            }
            let shape = SDPAEngine.Shape(batch: batch, heads: heads, sq: sq, sk: sk, dim: dim)
            if bias == nil, !causal, dim % 8 == 0, let engine = sdpa, let plans = engine.plans(shape) {
                let plan = plans.count == 1
                    ? plans[0] : try fastest(plans, engine, shape, q: qp, k: kp, v: vp, o: y, scale: scale)
                let workspace = try allocator.allocate(max(plan.workspaceSize, 1))
                let flops = 4 * Double(batch * heads) * Double(sq) * Double(sk) * Double(dim)
                try profiler.measure("sdpa \(sq)x\(sk) h\(heads) d\(dim)", flops: flops, stream: stream) {
                    try engine.dnn.execute(plan, handle: engine.handle, q: qp, k: kp, v: vp, o: y, scale: scale,
                                           workspace: workspace.pointer)
                }
                return out
            }
            if options.attention == .automatic, dim % 8 == 0,
               try attentionByProducts(q: qp, k: kp, v: vp, bias: bp, y: y, batch: batch, sq: sq, sk: sk,
                                       heads: heads, dim: dim, scale: scale, causal: causal)
            {
                return out
            }
            let paddedRow = 4 * ((dim + 3) / 4) + 2, evenDim = 2 * ((dim + 1) / 2)
            let sharedBytes = 2 * (2 * 32 * paddedRow + 16 * evenDim)
            try launch("attention", dim <= 256 ? "attention_bf16" : "attention_wide_bf16", grid: ((sq + 15) / 16, heads, batch), block: (128, 1, 1),
                       sharedBytes: sharedBytes,
                       [.pointer(qp), .pointer(kp), .pointer(vp), .pointer(bp), .pointer(y), .int(sq), .int(sk),
                        .int(heads), .int(dim), .float(scale), .int(causal ? 1 : 0)])
            return out
        }
    }
}

extension CUDABackend {
    /// Most bytes of f32 scores plus bf16 probabilities `attentionByProducts` holds at once (one batch element).
    static let scoresByteLimit = 1 << 30

    /// Times every cuDNN engine for an attention shape on the call's own operands (one untimed run, then two
    /// between events; the output is written again by the real run) and keeps the fastest. Engines that fail to run
    /// are skipped; once per shape, so it is start-up time.
    private func fastest(_ plans: [CuDNN.SDPAPlan], _ engine: SDPAEngine, _ shape: SDPAEngine.Shape,
                         q: CUdeviceptr, k: CUdeviceptr, v: CUdeviceptr, o: CUdeviceptr, scale: Float) throws
        -> CuDNN.SDPAPlan
    {
        var best: (plan: CuDNN.SDPAPlan, ms: Double)?
        var times: [String] = []
        for plan in plans {
            do {
                let workspace = try allocator.allocate(max(plan.workspaceSize, 1))
                let ms = try timeOnStream(repeats: 2) {
                    try engine.dnn.execute(plan, handle: engine.handle, q: q, k: k, v: v, o: o, scale: scale,
                                           workspace: workspace.pointer)
                }
                times.append(String(format: "engine %d %.3f ms", plan.engineIndex, ms))
                if ms < (best?.ms ?? .infinity) { best = (plan, ms) }
            } catch {
                times.append("engine \(plan.engineIndex) failed: \(error)")
            }
        }
        guard let best else { throw TensorError.backend("cuda: no cuDNN attention engine ran: \(times.joined(separator: "; "))") }
        engine.choose(best.plan, for: shape, report: "sdpa \(shape.sq)x\(shape.sk) h\(shape.heads) d\(shape.dim): "
                      + times.joined(separator: ", ") + "; kept engine \(best.plan.engineIndex)")
        return best.plan
    }

    /// Attention as `S = q·kᵀ` (cuBLASLt, f32, a strided batch over the heads), `P = softmax(scale·S + bias)`
    /// (`softmax.cu`, as bf16 P_hi + P_lo), `y = P_hi·v + P_lo·v` (cuBLASLt, accumulated in f32, then rounded once),
    /// one batch element at a time. Returns false, having done nothing, when cuBLASLt is missing or rejects a shape,
    /// or the scores would pass `scoresByteLimit`.
    ///
    /// In cuBLASLt's column-major terms, for head h (its rows in q, k, v, y are H·D apart, heads D apart):
    /// - scores, stored (Sq, ld) row-major = column-major (ld × Sq): `Sᵀ = k_h · q_hᵀ`, m = Sk, n = Sq, k = D,
    ///   A = k_h as the column-major (D × Sk) matrix of ld H·D transposed, B = q_h (D × Sq, ld H·D);
    /// - output `yᵀ = v_hᵀ · Pᵀ`: m = D, n = Sq, k = Sk, A = v_h (D × Sk, ld H·D), B = P_h (Sk × Sq, ld ld),
    ///   D = y_h (D × Sq, ld H·D), f32.
    func attentionByProducts(q: CUdeviceptr, k: CUdeviceptr, v: CUdeviceptr, bias: CUdeviceptr, y: CUdeviceptr,
                             batch: Int, sq: Int, sk: Int, heads: Int, dim: Int, scale: Float, causal: Bool) throws
        -> Bool
    {
        guard let engine = matmul else { return false }
        let ld = (sk + 7) / 8 * 8, rowStride = heads * dim
        guard heads * sq * ld * 8 <= CUDABackend.scoresByteLimit else { return false }
        // Pointers move by b·S·H·D and h·D elements, and by one head's scores: the alignment all of them keep.
        let alignment = [dim * 2, sq * rowStride * 2, sk * rowStride * 2, sq * ld * 2].map(byteAlignment).min() ?? 2
        let scoresShape = CuBLASLt.Shape(m: sk, n: sq, k: dim, transA: true, lda: rowStride, ldb: rowStride, ldd: ld,
                                         epilogue: .none, outputF32: true, batch: heads, strideA: dim, strideB: dim,
                                         strideD: sq * ld, alignment: alignment)
        let outputShape = CuBLASLt.Shape(m: dim, n: sq, k: sk, transA: false, lda: rowStride, ldb: ld, ldd: rowStride,
                                         epilogue: .none, outputF32: true, batch: heads, strideA: dim,
                                         strideB: sq * ld, strideD: dim, alignment: alignment)
        guard let scoresPlan = try engine.plan(scoresShape), let outputPlan = try engine.plan(outputShape) else {
            return false
        }
        let scores = try allocator.allocate(heads * sq * ld * 4)
        let high = try allocator.allocate(heads * sq * ld * 2), low = try allocator.allocate(heads * sq * ld * 2)
        let output = try allocator.allocate(batch * sq * rowStride * 4)
        for b in 0..<batch {
            let (qb, kb) = (q + CUdeviceptr(b * sq * rowStride * 2), k + CUdeviceptr(b * sk * rowStride * 2))
            let vb = v + CUdeviceptr(b * sk * rowStride * 2), ob = output.pointer + CUdeviceptr(b * sq * rowStride * 4)
            try engine.run(scoresPlan, a: kb, b: qb, bias: nil, d: scores.pointer, stream: stream)
            try launch("softmax", "softmax_scores_bf16", grid: ((heads * sq + 7) / 8, 1, 1), block: (256, 1, 1),
                       [.pointer(scores.pointer), .pointer(bias), .pointer(high.pointer), .pointer(low.pointer),
                        .int(heads), .int(sq), .int(sk), .int(ld), .float(scale), .int(causal ? 1 : 0)])
            try engine.run(outputPlan, a: vb, b: high.pointer, bias: nil, d: ob, stream: stream)
            try engine.run(outputPlan, a: vb, b: low.pointer, bias: nil, d: ob, beta: 1, stream: stream)
        }
        let n = batch * sq * rowStride
        try launchElements("elementwise", "bias_activation_f32_bf16", count: vectorCount(n),
                           [.pointer(output.pointer), .pointer(0), .pointer(y), .long(n), .long(1), .int(1),
                            .int(0)])
        return true
    }
}
