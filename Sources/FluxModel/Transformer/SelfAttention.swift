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

/// Rotary position embedding for the joint sequence: cos and sin (S, D/2), text positions first.
public struct PositionEmbedding: Sendable {
    public let cos: Tensor
    public let sin: Tensor
}

/// Heads of the joint sequence from each stream's fused `qkv` (B, Sᵢ, 3·H·D), streams in sequence order (text
/// first). BFL, per stream: `q, k, v = rearrange(qkv, "B L (K H D) -> K B H L D")`, `q, k = norm(q, k, v)`; then
/// the streams concatenated and `apply_rope` on q and k inside `attention` — one backend op. q, k, v (B, ΣSᵢ, H, D).
func jointHeads(_ streams: [(qkv: Tensor, norm: QKNorm)], heads: Int, pe: PositionEmbedding, on b: any Backend) throws
    -> AttentionHeads
{
    try b.attentionInputs(streams.map { QKVProjection(qkv: $0.qkv, queryScale: $0.norm.queryNorm,
                                                      keyScale: $0.norm.keyNorm) },
                          heads: heads, eps: FluxConfig.normEps, cos: pe.cos, sin: pe.sin)
}

/// BFL `attention(q, k, v, pe)` on rotated heads: exact softmax attention with scale 1/√D. Result (B, S, H·D).
func jointAttention(_ x: AttentionHeads, on b: any Backend) throws -> Tensor {
    let headDim = x.q.shape[3]
    let out = try b.attention(q: x.q, k: x.k, v: x.v, scale: 1 / Float(headDim).squareRoot())
    return try out.reshaped([out.shape[0], out.shape[1], -1])
}
