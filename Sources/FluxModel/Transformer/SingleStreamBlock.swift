import FluxCore

/// BFL `SingleStreamBlock` (diffusers `FluxSingleTransformerBlock`): one stream over the joint sequence, attention and
/// MLP in parallel from one fused input projection (`linear1` = [q; k; v; mlp]) and one output projection (`linear2`
/// over [attention; gelu(mlp)]).
struct SingleStreamBlock: Sendable {
    let linear1: Linear
    let linear2: Linear
    let norm: QKNorm
    let modulation: Modulation
    let hiddenSize: Int
    let heads: Int

    init(_ w: ModuleWeights, config: FluxConfig) throws {
        let dim = config.hiddenSize, mlp = config.mlpHiddenSize
        hiddenSize = dim
        heads = config.numAttentionHeads
        linear1 = try w.linear("linear1", in: dim, out: 3 * dim + mlp)
        linear2 = try w.linear("linear2", in: dim + mlp, out: dim)
        norm = try QKNorm(w.scope("norm"), headDim: config.attentionHeadDim)
        modulation = try Modulation(w.scope("modulation"), dim: dim, double: false)
    }

    /// x (B, S_txt + S_img, D) → same shape.
    func callAsFunction(_ x: Tensor, siluVec: Tensor, pe: PositionEmbedding, on b: any Backend) throws -> Tensor {
        let mod = try modulation(siluVec, on: b)[0]
        let xModulated = try b.modulatedLayerNorm(x, shift: mod.shift, scale: mod.scale, eps: FluxConfig.normEps)
        let fused = try linear1(xModulated, on: b)
        let qkv = try b.slice(fused, axis: 2, start: 0, count: 3 * hiddenSize)
        let mlp = try b.slice(fused, axis: 2, start: 3 * hiddenSize, count: fused.shape[2] - 3 * hiddenSize)
        let attn = try jointAttention(try splitHeads(qkv, norm: norm, heads: heads, on: b), pe: pe, on: b)
        let output = try linear2(try b.concat([attn, try b.activation(mlp, .geluTanh)], axis: 2), on: b)
        return try b.gatedAdd(x, output, gate: mod.gate)
    }
}

/// BFL `LastLayer` (diffusers `norm_out` + `proj_out`): AdaLN with (shift, scale) from `adaLN_modulation.1`, then a
/// linear to the output channels.
struct LastLayer: Sendable {
    let adaLNModulation: Linear
    let linear: Linear

    init(_ w: ModuleWeights, dim: Int, outChannels: Int) throws {
        adaLNModulation = try w.linear("adaLN_modulation.1", in: dim, out: 2 * dim)
        linear = try w.linear("linear", in: dim, out: outChannels)
    }

    func callAsFunction(_ x: Tensor, siluVec: Tensor, on b: any Backend) throws -> Tensor {
        let shiftScale = try b.chunk(try adaLNModulation(siluVec, on: b), 2, axis: 1)
        let modulated = try b.modulatedLayerNorm(x, shift: shiftScale[0], scale: shiftScale[1],
                                                 eps: FluxConfig.normEps)
        return try linear(modulated, on: b)
    }
}
