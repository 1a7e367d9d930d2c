import FluxCore

/// BFL `DoubleStreamBlock` (diffusers `FluxTransformerBlock`): image and text streams with their own weights, joined
/// only inside attention. Per stream: AdaLN-Zero modulation, attention, gated residual, modulated MLP, gated residual.
struct DoubleStreamBlock: Sendable {
    let imgMod: Modulation
    let imgAttn: SelfAttention
    let imgMlp0: Linear
    let imgMlp2: Linear
    let txtMod: Modulation
    let txtAttn: SelfAttention
    let txtMlp0: Linear
    let txtMlp2: Linear
    let heads: Int

    init(_ w: ModuleWeights, config: FluxConfig) throws {
        let dim = config.hiddenSize, mlp = config.mlpHiddenSize, headDim = config.attentionHeadDim
        heads = config.numAttentionHeads
        imgMod = try Modulation(w.scope("img_mod"), dim: dim, double: true)
        imgAttn = try SelfAttention(w.scope("img_attn"), dim: dim, headDim: headDim)
        imgMlp0 = try w.linear("img_mlp.0", in: dim, out: mlp)
        imgMlp2 = try w.linear("img_mlp.2", in: mlp, out: dim)
        txtMod = try Modulation(w.scope("txt_mod"), dim: dim, double: true)
        txtAttn = try SelfAttention(w.scope("txt_attn"), dim: dim, headDim: headDim)
        txtMlp0 = try w.linear("txt_mlp.0", in: dim, out: mlp)
        txtMlp2 = try w.linear("txt_mlp.2", in: mlp, out: dim)
    }

    /// img (B, S_img, D), txt (B, S_txt, D); `mods`: this block's two triples per stream (`img_mod`, `txt_mod`
    /// applied to silu(vec)). Returns the updated (img, txt).
    func callAsFunction(img: Tensor, txt: Tensor, mods: (img: [ModulationOut], txt: [ModulationOut]),
                        pe: PositionEmbedding, on b: any Backend) throws -> (img: Tensor, txt: Tensor)
    {
        let eps = FluxConfig.normEps
        let (imgMod1, imgMod2, txtMod1, txtMod2) = (mods.img[0], mods.img[1], mods.txt[0], mods.txt[1])

        // Attention over the joint sequence, text tokens first as in the reference.
        let imgModulated = try Linear.modulatedLayerNorm(img, imgMod1, eps: eps, for: [imgAttn.qkv], on: b)
        let txtModulated = try Linear.modulatedLayerNorm(txt, txtMod1, eps: eps, for: [txtAttn.qkv], on: b)
        let joint = try jointHeads([(try txtAttn.qkv(txtModulated, on: b), txtAttn.norm),
                                    (try imgAttn.qkv(imgModulated, on: b), imgAttn.norm)], heads: heads, pe: pe, on: b)
        let attn = try jointAttention(joint, on: b)
        let txtLength = txt.shape[1]
        let txtAttnOut = try b.slice(attn, axis: 1, start: 0, count: txtLength)
        let imgAttnOut = try b.slice(attn, axis: 1, start: txtLength, count: img.shape[1])

        // Image stream: gated attention residual, then gated MLP residual.
        var img = try b.gatedAdd(img, try imgAttn.proj(imgAttnOut, on: b), gate: imgMod1.gate)
        let imgMlpIn = try Linear.modulatedLayerNorm(img, imgMod2, eps: eps, for: [imgMlp0], on: b)
        img = try b.gatedAdd(img, try imgMlp2(try imgMlp0(imgMlpIn, on: b, activation: .geluTanh), on: b),
                             gate: imgMod2.gate)

        // Text stream, the same with its own weights.
        var txt = try b.gatedAdd(txt, try txtAttn.proj(txtAttnOut, on: b), gate: txtMod1.gate)
        let txtMlpIn = try Linear.modulatedLayerNorm(txt, txtMod2, eps: eps, for: [txtMlp0], on: b)
        txt = try b.gatedAdd(txt, try txtMlp2(try txtMlp0(txtMlpIn, on: b, activation: .geluTanh), on: b),
                             gate: txtMod2.gate)
        return (img, txt)
    }
}
