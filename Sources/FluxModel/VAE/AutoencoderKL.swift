import FluxCore

/// Which halves of the autoencoder to build (a text-to-image server needs only the decoder).
public struct AutoencoderParts: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let encoder = AutoencoderParts(rawValue: 1)
    public static let decoder = AutoencoderParts(rawValue: 2)
    public static let all: AutoencoderParts = [.encoder, .decoder]
}

/// diffusers `AutoencoderKL` (FLUX.1's VAE; BFL `AutoEncoder` without its built-in latent scaling), for any
/// `AutoencoderConfig` of `DownEncoderBlock2D`/`UpDecoderBlock2D` levels. Tensors are NCHW.
///
/// `decode` and `encode` are diffusers' `vae.decode(z).sample` and `vae.encode(x).latent_dist.mean`: neither applies
/// `scaling_factor`/`shift_factor`. The FLUX pipeline calls `unscaleLatents` before `decode` and `scaleLatents` after
/// `encode`. Weights are addressed by the diffusers names; `AutoencoderCheckpoint` maps LDM/BFL files onto them.
public final class AutoencoderKL: Sendable {
    public let config: AutoencoderConfig
    public let backend: any Backend
    public let parts: AutoencoderParts
    let encoder: VAEEncoder?
    let quantConv: Conv2d?
    let postQuantConv: Conv2d?
    let decoder: VAEDecoder?
    let source: String

    public init(config: AutoencoderConfig, weights w: ModuleWeights, parts: AutoencoderParts = .all) throws {
        try config.validate(source: w.description)
        self.config = config
        self.parts = parts
        backend = w.backend
        source = w.description
        let moments = 2 * config.latentChannels
        let buildEncoder = parts.contains(.encoder), buildDecoder = parts.contains(.decoder)
        encoder = buildEncoder ? try VAEEncoder(w.scope("encoder"), config: config) : nil
        quantConv = buildEncoder && config.useQuantConv
            ? try Conv2d(w.scope("quant_conv"), in: moments, out: moments, kernel: 1) : nil
        postQuantConv = buildDecoder && config.usePostQuantConv
            ? try Conv2d(w.scope("post_quant_conv"), in: config.latentChannels, out: config.latentChannels,
                         kernel: 1) : nil
        decoder = buildDecoder ? try VAEDecoder(w.scope("decoder"), config: config) : nil
    }

    /// Every weight (diffusers name, shape) an autoencoder of `config` asks for in `parts`, in the order it asks.
    public static func expectedWeights(for config: AutoencoderConfig, parts: AutoencoderParts = .all) throws
        -> [ExpectedWeight]
    {
        try WeightRecorder.expectedWeights { _ = try AutoencoderKL(config: config, weights: $0, parts: parts) }
    }

    /// `vae.decode(latents).sample`: latents (B, latent_channels, h, w), as the pipeline passes them (already
    /// unscaled) → image (B, out_channels, h·f, w·f), f = 2^(levels − 1) (8 for FLUX), nominally in −1…1.
    public func decode(_ latents: Tensor) throws -> Tensor {
        guard let decoder else { throw ModelError.missingWeight(name: "decoder.*", source: notLoaded("decoder")) }
        let expected = "(B, \(config.latentChannels), h, w)"
        guard latents.rank == 4, latents.shape[1] == config.latentChannels, latents.shape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.inputShape(name: "latents", shape: latents.shape, expected: expected)
        }
        let z = try postQuantConv.map { try $0(latents, on: backend) } ?? latents
        return try decoder(z, on: backend)
    }

    /// The encoder's output after `quant_conv`: (B, 2·latent_channels, h, w), the latent distribution's mean then
    /// its log-variance (unclamped), for an image (B, in_channels, H, W).
    public func encodeMoments(_ sample: Tensor) throws -> Tensor {
        guard let encoder else { throw ModelError.missingWeight(name: "encoder.*", source: notLoaded("encoder")) }
        try validateImage(sample)
        let moments = try encoder(sample, on: backend)
        return try quantConv.map { try $0(moments, on: backend) } ?? moments
    }

    /// `vae.encode(sample).latent_dist.mean`: image (B, in_channels, H, W) in −1…1 → (B, latent_channels, h, w),
    /// before any shift or scaling. h = H for one level, else each level but the last maps a side s to ⌊(s − 2)/2⌋ + 1
    /// (H/8 for FLUX when H is a multiple of 8).
    public func encode(_ sample: Tensor) throws -> Tensor {
        try backend.slice(try encodeMoments(sample), axis: 1, start: 0, count: config.latentChannels)
    }

    /// What the FLUX pipeline does to the transformer's latents before `decode`: `latents / scaling_factor +
    /// shift_factor`.
    public func unscaleLatents(_ latents: Tensor) throws -> Tensor {
        try backend.scaleShift(latents, scale: 1 / config.scalingFactor, shift: config.shiftFactor ?? 0)
    }

    /// What the FLUX pipeline does to `encode`'s output: `(mean − shift_factor) · scaling_factor`.
    public func scaleLatents(_ mean: Tensor) throws -> Tensor {
        let shift = config.shiftFactor ?? 0
        return try backend.scaleShift(mean, scale: config.scalingFactor, shift: -shift * config.scalingFactor)
    }

    /// Spatial size of `encode`'s output for an image of `height`×`width`, or nil when a downsampling level would get
    /// less than 2 pixels on a side (PyTorch rejects those).
    public func latentSize(height: Int, width: Int) -> (height: Int, width: Int)? {
        var (h, w) = (height, width)
        guard h > 0, w > 0 else { return nil }
        for _ in 1..<config.levels {
            guard h >= 2, w >= 2 else { return nil }
            (h, w) = (Downsample2D.outputSize(h), Downsample2D.outputSize(w))
        }
        return (h, w)
    }

    private func validateImage(_ sample: Tensor) throws {
        let expected = "(B, \(config.inChannels), H, W) with H, W ≥ \(config.downsamplingFactor)"
        guard sample.rank == 4, sample.shape[0] > 0, sample.shape[1] == config.inChannels,
              latentSize(height: sample.shape[2], width: sample.shape[3]) != nil
        else {
            throw ModelError.inputShape(name: "sample", shape: sample.shape, expected: expected)
        }
    }

    private func notLoaded(_ part: String) -> String { "\(source) (the \(part) was not loaded)" }
}
