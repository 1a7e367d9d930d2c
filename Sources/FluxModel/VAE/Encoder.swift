import FluxCore

/// diffusers `DownEncoderBlock2D`: `layers_per_block` resnets, then (except at the last level) `Downsample2D`.
struct DownEncoderBlock2D: Sendable {
    let resnets: [ResnetBlock2D]
    let downsampler: Downsample2D?

    init(_ w: ModuleWeights, in inChannels: Int, out outChannels: Int, layers: Int, groups: Int, downsample: Bool)
        throws
    {
        resnets = try (0..<layers).map {
            try ResnetBlock2D(w.scope("resnets.\($0)"), in: $0 == 0 ? inChannels : outChannels, out: outChannels,
                              groups: groups)
        }
        downsampler = downsample ? try Downsample2D(w.scope("downsamplers.0"), channels: outChannels) : nil
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        var h = x
        for resnet in resnets { h = try resnet(h, on: b) }
        return try downsampler.map { try $0(h, on: b) } ?? h
    }
}

/// diffusers `Encoder` of `AutoencoderKL` (LDM/BFL `Encoder`, `double_z`): image (B, in_channels, H, W) → conv_in →
/// down blocks from the narrowest level up, each ÷2 but the last → mid block → GroupNorm + SiLU → conv_out →
/// (B, 2·latent_channels, h, w): the mean, then the log-variance, of the latent distribution.
struct VAEEncoder: Sendable {
    let convIn: Conv2d
    let downBlocks: [DownEncoderBlock2D]
    let midBlock: UNetMidBlock2D
    let convNormOut: GroupNorm
    let convOut: Conv2d

    init(_ w: ModuleWeights, config c: AutoencoderConfig) throws {
        let groups = c.normNumGroups, channels = c.blockOutChannels
        convIn = try Conv2d(w.scope("conv_in"), in: c.inChannels, out: channels[0], kernel: 3)
        downBlocks = try channels.indices.map { i in
            try DownEncoderBlock2D(w.scope("down_blocks.\(i)"), in: channels[max(i - 1, 0)], out: channels[i],
                                   layers: c.layersPerBlock, groups: groups, downsample: i < c.levels - 1)
        }
        let widest = channels[c.levels - 1]
        midBlock = try UNetMidBlock2D(w.scope("mid_block"), channels: widest, groups: groups,
                                      addAttention: c.midBlockAddAttention)
        convNormOut = try GroupNorm(w.scope("conv_norm_out"), channels: widest, groups: groups)
        convOut = try Conv2d(w.scope("conv_out"), in: widest, out: 2 * c.latentChannels, kernel: 3)
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        var h = try convIn(x, on: b)
        for block in downBlocks { h = try block(h, on: b) }
        h = try midBlock(h, on: b)
        return try convOut(try convNormOut(h, on: b, activation: .silu), on: b)
    }
}
