import FluxCore

/// BFL `SelfAttention` of one stream of a double block: fused `qkv` projection, per-head q/k RMSNorm, output `proj`.
struct SelfAttention: Sendable {
    let qkv: Linear
    let norm: QKNorm
    let proj: Linear

    init(_ w: ModuleWeights, dim: Int, headDim: Int) throws {
        qkv = try w.linear("qkv", in: dim, out: 3 * dim)
        norm = try QKNorm(w.scope("norm"), headDim: headDim)
        proj = try w.linear("proj", in: dim, out: dim)
    }
}

/// Heads of one stream: q, k, v each (B, S, H, D), q and k normalised (not yet rotated).
struct HeadsQKV: Sendable {
    let q: Tensor
    let k: Tensor
    let v: Tensor
}

/// Splits fused `qkv` (B, S, 3·H·D) into normalised heads. As BFL's `rearrange("B L (K H D) -> K B H L D")`: q, k and
/// v are consecutive blocks of H·D channels.
func splitHeads(_ qkv: Tensor, norm: QKNorm, heads: Int, on b: any Backend) throws -> HeadsQKV {
    let (batch, seq) = (qkv.shape[0], qkv.shape[1])
    let parts = try b.chunk(qkv, 3, axis: 2).map { try $0.reshaped([batch, seq, heads, -1]) }
    return HeadsQKV(q: try b.rmsNorm(parts[0], weight: norm.queryNorm, eps: FluxConfig.normEps),
                    k: try b.rmsNorm(parts[1], weight: norm.keyNorm, eps: FluxConfig.normEps),
                    v: parts[2])
}

/// Rotary position embedding for the joint sequence: cos and sin (S, D/2), text positions first.
public struct PositionEmbedding: Sendable {
    public let cos: Tensor
    public let sin: Tensor
}

/// BFL `attention(q, k, v, pe)`: rotate q and k, exact softmax attention with scale 1/√D. Result (B, S, H·D).
func jointAttention(_ x: HeadsQKV, pe: PositionEmbedding, on b: any Backend) throws -> Tensor {
    let q = try b.rope(x.q, cos: pe.cos, sin: pe.sin)
    let k = try b.rope(x.k, cos: pe.cos, sin: pe.sin)
    let headDim = x.q.shape[3]
    let out = try b.attention(q: q, k: k, v: x.v, scale: 1 / Float(headDim).squareRoot())
    return try out.reshaped([out.shape[0], out.shape[1], -1])
}
