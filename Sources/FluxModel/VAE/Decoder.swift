import FluxCore

/// diffusers `UpDecoderBlock2D`: `layers_per_block + 1` resnets, then (except at the last level) `Upsample2D`.
struct UpDecoderBlock2D: Sendable {
    let resnets: [ResnetBlock2D]
    let upsampler: Upsample2D?

    init(_ w: ModuleWeights, in inChannels: Int, out outChannels: Int, layers: Int, groups: Int, upsample: Bool)
        throws
    {
        resnets = try (0..<layers).map {
            try ResnetBlock2D(w.scope("resnets.\($0)"), in: $0 == 0 ? inChannels : outChannels, out: outChannels,
                              groups: groups)
        }
        upsampler = upsample ? try Upsample2D(w.scope("upsamplers.0"), channels: outChannels) : nil
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        var h = x
        for resnet in resnets { h = try resnet(h, on: b) }
        return try upsampler.map { try $0(h, on: b) } ?? h
    }
}

/// diffusers `Decoder` of `AutoencoderKL` (LDM/BFL `Decoder`): latents (B, latent_channels, h, w) →
/// conv_in → mid block → up blocks from the widest level down, each ×2 but the last → GroupNorm + SiLU → conv_out →
/// (B, out_channels, h·2^(levels−1), w·2^(levels−1)).
struct VAEDecoder: Sendable {
    let convIn: Conv2d
    let midBlock: UNetMidBlock2D
    let upBlocks: [UpDecoderBlock2D]
    let convNormOut: GroupNorm
    let convOut: Conv2d

    init(_ w: ModuleWeights, config c: AutoencoderConfig) throws {
        let groups = c.normNumGroups
        let widest = c.blockOutChannels[c.levels - 1]
        convIn = try Conv2d(w.scope("conv_in"), in: c.latentChannels, out: widest, kernel: 3)
        midBlock = try UNetMidBlock2D(w.scope("mid_block"), channels: widest, groups: groups,
                                      addAttention: c.midBlockAddAttention)
        let reversed = Array(c.blockOutChannels.reversed())
        upBlocks = try reversed.indices.map { i in
            try UpDecoderBlock2D(w.scope("up_blocks.\(i)"), in: reversed[max(i - 1, 0)], out: reversed[i],
                                 layers: c.layersPerBlock + 1, groups: groups, upsample: i < c.levels - 1)
        }
        convNormOut = try GroupNorm(w.scope("conv_norm_out"), channels: c.blockOutChannels[0], groups: groups)
        convOut = try Conv2d(w.scope("conv_out"), in: c.blockOutChannels[0], out: c.outChannels, kernel: 3)
    }

    func callAsFunction(_ z: Tensor, on b: any Backend) throws -> Tensor {
        var h = try midBlock(try convIn(z, on: b), on: b)
        for block in upBlocks { h = try block(h, on: b) }
        return try convOut(try convNormOut(h, on: b, activation: .silu), on: b)
    }
}
