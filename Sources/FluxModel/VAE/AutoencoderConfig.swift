import Foundation

/// Architecture of a diffusers `AutoencoderKL`, with the field names of its `config.json`.
///
/// A missing field takes diffusers' default (`autoencoders/autoencoder_kl.py`), as `from_pretrained` does. FLUX.1's
/// VAE (`.flux`): 4 levels of 128, 256, 512, 512 channels, 2 resnets per encoder level (3 per decoder level), 16 latent
/// channels, 32 groups, no quant convs, latents scaled by `(z − 0.1159) · 0.3611` outside the VAE.
public struct AutoencoderConfig: Codable, Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    /// One `DownEncoderBlock2D` per level; nil in a config means one per `block_out_channels` entry.
    public var downBlockTypes: [String]?
    /// One `UpDecoderBlock2D` per level; nil in a config means one per `block_out_channels` entry.
    public var upBlockTypes: [String]?
    public var blockOutChannels = [64]
    public var layersPerBlock = 1
    public var actFn = "silu"
    public var latentChannels = 4
    public var normNumGroups = 32
    /// The pipeline divides latents by this before decoding (and multiplies after encoding); the VAE itself never
    /// applies it.
    public var scalingFactor: Float = 0.18215
    /// The pipeline adds this after dividing by `scalingFactor` before decoding; nil means 0.
    public var shiftFactor: Float?
    public var useQuantConv = true
    public var usePostQuantConv = true
    public var midBlockAddAttention = true

    /// ε of every GroupNorm in the encoder and decoder (hard-coded in diffusers' `Encoder`/`Decoder` and BFL's).
    public static let normEps: Float = 1e-6
    /// diffusers' only block types for `AutoencoderKL`'s `Encoder` and `Decoder` that this implementation runs.
    public static let downBlockType = "DownEncoderBlock2D"
    public static let upBlockType = "UpDecoderBlock2D"

    public init() {}

    /// FLUX.1's VAE (black-forest-labs/FLUX.1-dev `vae/config.json`; the same in schnell).
    public static let flux: AutoencoderConfig = {
        var c = AutoencoderConfig()
        c.blockOutChannels = [128, 256, 512, 512]
        c.layersPerBlock = 2
        c.latentChannels = 16
        c.scalingFactor = 0.3611
        c.shiftFactor = 0.1159
        c.useQuantConv = false
        c.usePostQuantConv = false
        return c
    }()

    /// Number of resolution levels; the image is `2^(levels − 1)` times the latent size per side.
    public var levels: Int { blockOutChannels.count }
    public var downsamplingFactor: Int { 1 << max(levels - 1, 0) }

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels"
        case downBlockTypes = "down_block_types", upBlockTypes = "up_block_types"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block", actFn = "act_fn"
        case latentChannels = "latent_channels", normNumGroups = "norm_num_groups"
        case scalingFactor = "scaling_factor", shiftFactor = "shift_factor"
        case useQuantConv = "use_quant_conv", usePostQuantConv = "use_post_quant_conv"
        case midBlockAddAttention = "mid_block_add_attention"
    }

    public init(from decoder: any Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AutoencoderConfig()
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? d.inChannels
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? d.outChannels
        downBlockTypes = try c.decodeIfPresent([String].self, forKey: .downBlockTypes)
        upBlockTypes = try c.decodeIfPresent([String].self, forKey: .upBlockTypes)
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? d.blockOutChannels
        layersPerBlock = try c.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? d.layersPerBlock
        actFn = try c.decodeIfPresent(String.self, forKey: .actFn) ?? d.actFn
        latentChannels = try c.decodeIfPresent(Int.self, forKey: .latentChannels) ?? d.latentChannels
        normNumGroups = try c.decodeIfPresent(Int.self, forKey: .normNumGroups) ?? d.normNumGroups
        scalingFactor = try c.decodeIfPresent(Float.self, forKey: .scalingFactor) ?? d.scalingFactor
        shiftFactor = try c.decodeIfPresent(Float.self, forKey: .shiftFactor)
        useQuantConv = try c.decodeIfPresent(Bool.self, forKey: .useQuantConv) ?? d.useQuantConv
        usePostQuantConv = try c.decodeIfPresent(Bool.self, forKey: .usePostQuantConv) ?? d.usePostQuantConv
        midBlockAddAttention = try c.decodeIfPresent(Bool.self, forKey: .midBlockAddAttention)
            ?? d.midBlockAddAttention
    }

    /// Reads a diffusers `vae/config.json`.
    public static func load(contentsOf path: String) throws -> AutoencoderConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.missingFile(path: path, expected: "a VAE config.json")
        }
        do {
            let config = try JSONDecoder().decode(AutoencoderConfig.self, from: data)
            try config.validate(source: path)
            return config
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError.invalidConfig(source: path, reason: "not an AutoencoderKL config: \(error)")
        }
    }

    /// Checks the numbers are a buildable network of the kind implemented here.
    public func validate(source: String) throws {
        func check(_ ok: Bool, _ reason: String) throws {
            if !ok { throw ModelError.invalidConfig(source: source, reason: reason) }
        }
        let limit = 1 << 16
        for (name, value) in [("in_channels", inChannels), ("out_channels", outChannels),
                              ("latent_channels", latentChannels), ("norm_num_groups", normNumGroups)] {
            try check(value > 0 && value < limit, "\(name) = \(value) is out of range")
        }
        try check(layersPerBlock >= 1 && layersPerBlock < 1000, "layers_per_block = \(layersPerBlock) is out of range")
        try check(!blockOutChannels.isEmpty && blockOutChannels.count <= 16,
                  "block_out_channels \(blockOutChannels) must have 1 to 16 levels")
        for channels in blockOutChannels {
            try check(channels > 0 && channels < limit, "block_out_channels \(blockOutChannels) is out of range")
            try check(channels % normNumGroups == 0,
                      "block_out_channels \(blockOutChannels) must be multiples of norm_num_groups \(normNumGroups)")
        }
        if let downBlockTypes {
            try check(downBlockTypes.count == levels && downBlockTypes.allSatisfy { $0 == Self.downBlockType },
                      "down_block_types \(downBlockTypes) must be \(levels) × \(Self.downBlockType)")
        }
        if let upBlockTypes {
            try check(upBlockTypes.count == levels && upBlockTypes.allSatisfy { $0 == Self.upBlockType },
                      "up_block_types \(upBlockTypes) must be \(levels) × \(Self.upBlockType)")
        }
        try check(actFn == "silu" || actFn == "swish", "act_fn \"\(actFn)\" is not supported (only silu)")
        try check(scalingFactor.isFinite && scalingFactor != 0, "scaling_factor \(scalingFactor) must be non-zero")
        if let shiftFactor { try check(shiftFactor.isFinite, "shift_factor \(shiftFactor) must be finite") }
    }
}
