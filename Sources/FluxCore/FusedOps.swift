/// The fused ops written once as the compositions of basic ops they stand for. Each is the default implementation
/// of its `Backend` requirement (below), so a backend that fuses nothing (the CPU) runs these; a backend that fuses an
/// op overrides the requirement, may call the composition for the cases it does not fuse, and `BackendConformance`
/// compares its override against the composition on the same backend. The operands are those the op's public method
/// has checked; each step goes through the checked basic ops (a few shape comparisons more, on small arrays).
public enum FusedOps {
    /// `linear(concat(parts, axis: -1), weight:, bias:, activation:)`: the concatenation, then one product.
    public static func linear(on backend: any Backend, concatenating parts: [Tensor], weight: Tensor, bias: Tensor?,
                              activation: Activation) throws -> Tensor
    {
        try backend.linear(try joined(on: backend, parts), weight: weight, bias: bias, activation: activation)
    }

    /// `quantizeRows(concat(parts, axis: -1))`.
    public static func quantizeRows(on backend: any Backend, concatenating parts: [Tensor]) throws -> QuantizedRows {
        try backend.quantizeRows(try joined(on: backend, parts))
    }

    /// `quantizeRows(modulatedLayerNorm(x, shift:, scale:, eps:))`: the norm in the backend's storage dtype, then its
    /// rows quantized.
    public static func modulatedLayerNormFP8(on backend: any Backend, _ x: Tensor, shift: Tensor, scale: Tensor,
                                             eps: Float) throws -> QuantizedRows
    {
        try backend.quantizeRows(try backend.modulatedLayerNorm(x, shift: shift, scale: scale, eps: eps))
    }

    /// Per stream: `qkv` split into three (B, Sᵢ, H, D) blocks (`chunk`, a reshape), q and k RMS-normalised with their
    /// scales; the streams joined along the sequence (`concat`); q and k rotated (`rotatePairs`).
    public static func attentionInputs(on backend: any Backend, _ streams: [QKVProjection], heads: Int, eps: Float,
                                       cos: Tensor, sin: Tensor) throws -> AttentionHeads
    {
        let g = OpShapes.AttentionInputs(streams, heads: heads)
        var qs: [Tensor] = [], ks: [Tensor] = [], vs: [Tensor] = []
        for (s, length) in zip(streams, g.lengths) {
            let parts = try backend.chunk(s.qkv, 3, axis: 2).map {
                try $0.reshaped([g.batch, length, heads, g.headDim])
            }
            qs.append(try backend.rmsNorm(parts[0], weight: s.queryScale, eps: eps))
            ks.append(try backend.rmsNorm(parts[1], weight: s.keyScale, eps: eps))
            vs.append(parts[2])
        }
        return AttentionHeads(q: try rotatePairs(on: backend, try backend.concat(qs, axis: 1), cos: cos, sin: sin),
                              k: try rotatePairs(on: backend, try backend.concat(ks, axis: 1), cos: cos, sin: sin),
                              v: try backend.concat(vs, axis: 1))
    }

    /// The rotary embedding of `attentionInputs` on interleaved pairs, in basic ops: x (B, S, H, D), cos and sin
    /// (S, D/2); for pair i of every head at position s, `(x₂ᵢ, x₂ᵢ₊₁) ← (x₂ᵢ cos − x₂ᵢ₊₁ sin, x₂ᵢ₊₁ cos + x₂ᵢ sin)`.
    /// The tables are broadcast over batch and heads by an `embedding` gather of row s for every (b, s, h); the even
    /// and odd elements are `slice`s of x seen as (B, S, H, D/2, 2), and the rotated halves are joined the same way.
    static func rotatePairs(on backend: any Backend, _ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor {
        let (batch, seq, heads, half) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3] / 2)
        let rows = [batch, seq, heads]
        var positions: [Int32] = []
        positions.reserveCapacity(batch * seq * heads)
        for _ in 0..<batch { for s in 0..<seq { for _ in 0..<heads { positions.append(Int32(s)) } } }
        let c = try backend.embedding(cos, ids: positions, shape: rows)  // (B, S, H, D/2)
        let s = try backend.embedding(sin, ids: positions, shape: rows)
        let pairs = try x.reshaped(rows + [half, 2])
        let even = try backend.slice(pairs, axis: 4, start: 0, count: 1).reshaped(rows + [half])
        let odd = try backend.slice(pairs, axis: 4, start: 1, count: 1).reshaped(rows + [half])
        let rotatedEven = try backend.addScaled(try backend.multiply(even, c), try backend.multiply(odd, s), scale: -1)
        let rotatedOdd = try backend.add(try backend.multiply(odd, c), try backend.multiply(even, s))
        let halves = [try rotatedEven.reshaped(rows + [half, 1]), try rotatedOdd.reshaped(rows + [half, 1])]
        return try backend.concat(halves, axis: 4).reshaped(x.shape)
    }

    /// One part as it is; more, concatenated along the last axis.
    private static func joined(on backend: any Backend, _ parts: [Tensor]) throws -> Tensor {
        parts.count == 1 ? parts[0] : try backend.concat(parts, axis: -1)
    }
}

/// The fused ops' default implementations: their compositions.
extension Backend {
    public func uncheckedLinear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?, activation: Activation)
        throws -> Tensor
    {
        try FusedOps.linear(on: self, concatenating: parts, weight: weight, bias: bias, activation: activation)
    }

    public func uncheckedQuantizeRows(concatenating parts: [Tensor]) throws -> QuantizedRows {
        try FusedOps.quantizeRows(on: self, concatenating: parts)
    }

    public func uncheckedModulatedLayerNormFP8(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws
        -> QuantizedRows
    {
        try FusedOps.modulatedLayerNormFP8(on: self, x, shift: shift, scale: scale, eps: eps)
    }

    public func uncheckedAttentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor,
                                         sin: Tensor) throws -> AttentionHeads
    {
        try FusedOps.attentionInputs(on: self, streams, heads: heads, eps: eps, cos: cos, sin: sin)
    }
}
