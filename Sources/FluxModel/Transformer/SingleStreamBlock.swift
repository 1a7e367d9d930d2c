import FluxCore

/// BFL `SingleStreamBlock` (diffusers `FluxSingleTransformerBlock`): one stream over the joint sequence, attention and
/// MLP in parallel from one fused input projection (`linear1` = [q; k; v; mlp]) and one output projection (`linear2`
/// over [attention; gelu(mlp)]).
///
/// `linear1` runs as two products over its row blocks (q, k, v, then mlp) so that GELU is fused into the MLP half's
/// product, and `linear2` reads its two inputs where they are: neither the split of linear1's output nor the
/// concatenation before linear2 is ever copied.
struct SingleStreamBlock: Sendable {
    /// `linear1` rows 0 ..< 3·D (q, k, v) and 3·D ..< 3·D + mlp (the MLP input).
    let linear1QKV: Linear
    let linear1MLP: Linear
    let linear2: Linear
    let norm: QKNorm
    let modulation: Modulation
    let heads: Int

    init(_ w: ModuleWeights, config: FluxConfig) throws {
        let dim = config.hiddenSize, mlp = config.mlpHiddenSize
        heads = config.numAttentionHeads
        // linear1's row blocks, copied once at load, then quantized (when the weights are) each on its own.
        let linear1 = w.scope("linear1"), b = w.backend
        let weight1 = try w.linearWeight("linear1", in: dim, out: 3 * dim + mlp)
        let bias1 = try linear1.tensor("bias", shape: [3 * dim + mlp])
        func rows(_ start: Int, _ count: Int) throws -> Linear {
            let rows = try b.slice(weight1, axis: 0, start: start, count: count)
            return try w.quantized(Linear(weight: rows, bias: try b.slice(bias1, axis: 0, start: start, count: count),
                                          lowRank: w.lowRankSlot("linear1", rows: start..<start + count, base: rows)))
        }
        linear1QKV = try rows(0, 3 * dim)
        linear1MLP = try rows(3 * dim, mlp)
        linear2 = try w.linear("linear2", in: dim + mlp, out: dim)
        norm = try QKNorm(w.scope("norm"), headDim: config.attentionHeadDim)
        modulation = try Modulation(w.scope("modulation"), dim: dim, double: false)
    }

    /// x (B, S_txt + S_img, D) → same shape; `mod`: this block's triple (`modulation` applied to silu(vec)).
    func callAsFunction(_ x: Tensor, mod: ModulationOut, pe: PositionEmbedding, on b: any Backend) throws -> Tensor {
        let xModulated = try Linear.modulatedLayerNorm(x, mod, eps: FluxConfig.normEps,
                                                       for: [linear1QKV, linear1MLP], on: b)
        let qkv = try linear1QKV(xModulated, on: b)
        let mlp = try linear1MLP(xModulated, on: b, activation: .geluTanh)
        let attn = try jointAttention(try jointHeads([(qkv, norm)], heads: heads, pe: pe, on: b), on: b)
        let output = try linear2(concatenating: [attn, mlp], on: b)
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

    /// `shift`, `scale`: the halves of `adaLN_modulation` applied to silu(vec).
    func callAsFunction(_ x: Tensor, shift: Tensor, scale: Tensor, on b: any Backend) throws -> Tensor {
        let modulated = try b.modulatedLayerNorm(x, shift: shift, scale: scale, eps: FluxConfig.normEps)
        return try linear(modulated, on: b)
    }
}
