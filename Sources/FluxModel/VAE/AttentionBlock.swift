import FluxCore

/// The VAE's mid-block self-attention (diffusers `Attention` built by `UNetMidBlock2D` with one head of all C
/// channels, residual connection, output factor 1; LDM/BFL `AttnBlock`):
/// `x + to_out(softmax(q·kᵀ/√C)·v)` with q, k, v = to_q/to_k/to_v of `group_norm(x)` over the H·W positions.
struct VAEAttentionBlock: Sendable {
    let groupNorm: GroupNorm
    let toQ: Linear
    let toK: Linear
    let toV: Linear
    let toOut: Linear

    init(_ w: ModuleWeights, channels: Int, groups: Int) throws {
        groupNorm = try GroupNorm(w.scope("group_norm"), channels: channels, groups: groups)
        toQ = try w.pointwiseLinear("to_q", channels: channels)
        toK = try w.pointwiseLinear("to_k", channels: channels)
        toV = try w.pointwiseLinear("to_v", channels: channels)
        toOut = try w.pointwiseLinear("to_out.0", channels: channels)
    }

    /// x (B, C, H, W) → the same shape.
    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        let (batch, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let positions = height * width
        // (B, C, H, W) → (B, H·W, C): one token per pixel, as diffusers' `view(B, C, H·W).transpose(1, 2)`.
        let normed = try groupNorm(x, on: b).reshaped([batch, channels, positions])
        let tokens = try b.permute(normed, [0, 2, 1])
        // A single head of all C channels: (B, H·W, 1, C).
        let q = try toQ(tokens, on: b).reshaped([batch, positions, 1, channels])
        let k = try toK(tokens, on: b).reshaped([batch, positions, 1, channels])
        let v = try toV(tokens, on: b).reshaped([batch, positions, 1, channels])
        let attended = try b.attention(q: q, k: k, v: v, scale: 1 / Float(channels).squareRoot())
        let out = try toOut(try attended.reshaped([batch, positions, channels]), on: b)
        // Back to (B, C, H, W), then the residual.
        let image = try b.permute(out, [0, 2, 1]).reshaped([batch, channels, height, width])
        return try b.add(x, image)
    }
}

/// diffusers `UNetMidBlock2D` as the VAE builds it (LDM/BFL `mid`): resnet, attention (unless
/// `mid_block_add_attention` is false), resnet, all at C channels.
struct UNetMidBlock2D: Sendable {
    let resnets: [ResnetBlock2D]
    let attention: VAEAttentionBlock?

    init(_ w: ModuleWeights, channels: Int, groups: Int, addAttention: Bool) throws {
        resnets = try (0..<2).map {
            try ResnetBlock2D(w.scope("resnets.\($0)"), in: channels, out: channels, groups: groups)
        }
        attention = addAttention
            ? try VAEAttentionBlock(w.scope("attentions.0"), channels: channels, groups: groups) : nil
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        var h = try resnets[0](x, on: b)
        if let attention { h = try attention(h, on: b) }
        return try resnets[1](h, on: b)
    }
}
