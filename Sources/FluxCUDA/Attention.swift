import FluxCore

/// cuDNN with its handle and one SDPA plan per shape; shapes it cannot run are remembered and go to the kernel.
final class SDPAEngine: @unchecked Sendable {
    struct Shape: Hashable {
        let batch: Int, heads: Int, sq: Int, sk: Int, dim: Int
    }

    let dnn: CuDNN
    let handle: OpaquePointer
    private var plans: [Shape: CuDNN.SDPAPlan] = [:]
    private var unsupported: Set<Shape> = []

    init(stream: CUhandle) throws {
        dnn = try CuDNN()
        handle = try dnn.createHandle(stream: stream)
    }

    func plan(_ shape: Shape) -> CuDNN.SDPAPlan? {
        if let plan = plans[shape] { return plan }
        if unsupported.contains(shape) { return nil }
        do {
            let plan = try CuDNN.SDPAPlan(dnn, handle: handle, batch: shape.batch, heads: shape.heads, sq: shape.sq,
                                          sk: shape.sk, dim: shape.dim)
            plans[shape] = plan
            return plan
        } catch {
            unsupported.insert(shape)
            return nil
        }
    }
}

extension CUDABackend {
    /// Largest head dimension the attention kernel takes (16 output columns per lane of a warp; the FLUX VAE's
    /// mid-block attention is one head of 512).
    static let maxAttentionHeadDim = 512

    /// Exact softmax attention. Without bias or causal mask (FLUX's joint attention) on cuDNN's fused flash attention
    /// when it takes the shape; otherwise, and for T5's bias and CLIP's causal mask, the kernel of `attention.cu`
    /// (online softmax, f32 math).
    public func attention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor?, causal: Bool) throws -> Tensor {
        let op = "attention"
        try expect(q.rank == 4, op, "q", q.shape, "(B, Sq, H, D)")
        let (batch, sq, heads, dim) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        try expect(k.rank == 4 && k.shape[0] == batch && k.shape[2] == heads && k.shape[3] == dim, op, "k", k.shape,
                   "(\(batch), Sk, \(heads), \(dim))")
        let sk = k.shape[1]
        try expect(v.shape == k.shape, op, "v", v.shape, "\(k.shape)")
        if let bias { try expect(bias.shape == [heads, sq, sk], op, "bias", bias.shape, "[\(heads), \(sq), \(sk)]") }
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
            if bias == nil, !causal, dim % 8 == 0, let engine = sdpa,
               let plan = engine.plan(.init(batch: batch, heads: heads, sq: sq, sk: sk, dim: dim))
            {
                let workspace = try allocator.allocate(max(plan.workspaceSize, 1))
                try engine.dnn.execute(plan, handle: engine.handle, q: qp, k: kp, v: vp, o: y, scale: scale,
                                       workspace: workspace.pointer)
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
