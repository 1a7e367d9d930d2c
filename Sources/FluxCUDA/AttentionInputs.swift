import FluxCore

extension CUDABackend {
    /// Fused (overrides `FusedOps.attentionInputs`): one launch of `attention_inputs.cu` per stream, each writing its
    /// rows of the joint q, k, v.
    public func uncheckedAttentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor, sin: Tensor)
        throws -> AttentionHeads
    {
        let op = "attentionInputs"
        let g = OpShapes.AttentionInputs(streams, heads: heads)
        let (batch, dim, lengths) = (g.batch, g.headDim, g.lengths)
        let total = lengths.reduce(0, +)
        return try locked {
            let cp = try pointer(cos, op), sp = try pointer(sin, op)
            let shape = [batch, total, heads, dim]
            let (q, qp) = try empty(shape, op), (k, kp) = try empty(shape, op), (v, vp) = try empty(shape, op)
            let vector = dim % 8 == 0 ? 8 : 2, chunks = dim / vector
            let group = chunks <= 32 && chunks & (chunks - 1) == 0 ? chunks : 32
            // One 8-element chunk per lane: the 4-rows-per-group kernel; else one row per group.
            let kernel = vector == 2 ? "attention_inputs_x2_bf16"
                : group == chunks ? "attention_inputs_rows4_bf16" : "attention_inputs_x8_bf16"
            let rowsPerBlock = 8 * (32 / group) * (group == chunks && vector == 8 ? 4 : 1)
            var start = 0
            for (stream, length) in zip(streams, lengths) {
                defer { start += length }
                let rows = batch * length * 3 * heads
                guard rows > 0 else { continue }
                let xp = try pointer(stream.qkv, op), qs = try pointer(stream.queryScale, op)
                let ks = try pointer(stream.keyScale, op)
                try launch("attention_inputs", kernel,
                           grid: ((rows + rowsPerBlock - 1) / rowsPerBlock, 1, 1), block: (256, 1, 1),
                           [.pointer(xp), .pointer(qs), .pointer(ks), .pointer(cp), .pointer(sp), .pointer(qp),
                            .pointer(kp), .pointer(vp), .long(rows), .int(length), .int(total), .int(start),
                            .int(heads), .int(dim), .int(group), .float(eps)])
            }
            return AttentionHeads(q: q, k: k, v: v)
        }
    }
}
