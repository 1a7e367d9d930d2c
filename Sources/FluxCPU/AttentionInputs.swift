import FluxCore

extension CPUBackend {
    /// The plain composition the fused op stands for: per stream, split `qkv` into three (B, S, H, D) blocks and
    /// RMS-normalise q and k with their scales; join the streams along the sequence; rotate q and k.
    public func attentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor, sin: Tensor) throws
        -> AttentionHeads
    {
        let (batch, headDim, _) = try FusedOpShapes.attentionInputs(streams, heads: heads, cos: cos, sin: sin)
        var qs: [Tensor] = [], ks: [Tensor] = [], vs: [Tensor] = []
        for s in streams {
            let parts = try chunk(s.qkv, 3, axis: 2).map { try $0.reshaped([batch, s.qkv.shape[1], heads, headDim]) }
            qs.append(try rmsNorm(parts[0], weight: s.queryScale, eps: eps))
            ks.append(try rmsNorm(parts[1], weight: s.keyScale, eps: eps))
            vs.append(parts[2])
        }
        return AttentionHeads(q: try rope(try concat(qs, axis: 1), cos: cos, sin: sin),
                              k: try rope(try concat(ks, axis: 1), cos: cos, sin: sin),
                              v: try concat(vs, axis: 1))
    }
}
