import Foundation

/// Architecture of a FLUX transformer, with the field names of diffusers' `FluxTransformer2DModel` config.json.
///
/// FLUX.1-dev and -schnell share everything but `guidanceEmbeds`: hidden 3072 = 24 heads × 128, 19 double-stream and
/// 38 single-stream blocks, 64 input channels (16 latent channels × 2×2 patch), T5 context 4096, CLIP pooled 768,
/// RoPE axes (16, 56, 56) with θ = 10000 (diffusers `transformer_flux.py`, BFL `flux/util.py`).
public struct FluxConfig: Codable, Equatable, Sendable {
    public var patchSize = 1
    public var inChannels = 64
    public var outChannels: Int?
    public var numLayers = 19
    public var numSingleLayers = 38
    public var attentionHeadDim = 128
    public var numAttentionHeads = 24
    public var jointAttentionDim = 4096
    public var pooledProjectionDim = 768
    public var guidanceEmbeds = false
    public var axesDimsRope = [16, 56, 56]

    /// MLP width ratio (not in the diffusers config: fixed at 4 in both references).
    public static let mlpRatio = 4
    /// RoPE base (fixed at 10000 in both references).
    public static let ropeTheta = 10_000.0
    /// ε of every LayerNorm and q/k RMSNorm in the transformer.
    public static let normEps: Float = 1e-6

    public init() {}

    public static let dev: FluxConfig = { var c = FluxConfig(); c.guidanceEmbeds = true; return c }()
    public static let schnell = FluxConfig()

    /// Width of the residual stream: heads × head dim (3072 for FLUX.1).
    public var hiddenSize: Int { numAttentionHeads * attentionHeadDim }
    public var mlpHiddenSize: Int { hiddenSize * Self.mlpRatio }
    public var outputChannels: Int { patchSize * patchSize * (outChannels ?? inChannels) }

    enum CodingKeys: String, CodingKey {
        case patchSize = "patch_size", inChannels = "in_channels", outChannels = "out_channels"
        case numLayers = "num_layers", numSingleLayers = "num_single_layers"
        case attentionHeadDim = "attention_head_dim", numAttentionHeads = "num_attention_heads"
        case jointAttentionDim = "joint_attention_dim", pooledProjectionDim = "pooled_projection_dim"
        case guidanceEmbeds = "guidance_embeds", axesDimsRope = "axes_dims_rope"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = FluxConfig()
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? d.inChannels
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels)
        numLayers = try c.decodeIfPresent(Int.self, forKey: .numLayers) ?? d.numLayers
        numSingleLayers = try c.decodeIfPresent(Int.self, forKey: .numSingleLayers) ?? d.numSingleLayers
        attentionHeadDim = try c.decodeIfPresent(Int.self, forKey: .attentionHeadDim) ?? d.attentionHeadDim
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        jointAttentionDim = try c.decodeIfPresent(Int.self, forKey: .jointAttentionDim) ?? d.jointAttentionDim
        pooledProjectionDim = try c.decodeIfPresent(Int.self, forKey: .pooledProjectionDim) ?? d.pooledProjectionDim
        guidanceEmbeds = try c.decodeIfPresent(Bool.self, forKey: .guidanceEmbeds) ?? d.guidanceEmbeds
        axesDimsRope = try c.decodeIfPresent([Int].self, forKey: .axesDimsRope) ?? d.axesDimsRope
    }

    /// Reads a diffusers `config.json`.
    public static func load(contentsOf path: String) throws -> FluxConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.missingFile(path: path, expected: "a transformer config.json")
        }
        do {
            let config = try JSONDecoder().decode(FluxConfig.self, from: data)
            try config.validate(source: path)
            return config
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError.invalidConfig(source: path, reason: "not a FLUX transformer config: \(error)")
        }
    }

    /// Checks the numbers are a buildable network.
    public func validate(source: String) throws {
        func check(_ ok: Bool, _ reason: String) throws {
            if !ok { throw ModelError.invalidConfig(source: source, reason: reason) }
        }
        let limit = 1 << 20
        for (name, value) in [("in_channels", inChannels), ("attention_head_dim", attentionHeadDim),
                              ("num_attention_heads", numAttentionHeads), ("joint_attention_dim", jointAttentionDim),
                              ("pooled_projection_dim", pooledProjectionDim), ("patch_size", patchSize)] {
            try check(value > 0 && value < limit, "\(name) = \(value) is out of range")
        }
        try check(numLayers >= 0 && numLayers < 10_000, "num_layers = \(numLayers) is out of range")
        try check(numSingleLayers >= 0 && numSingleLayers < 10_000,
                  "num_single_layers = \(numSingleLayers) is out of range")
        if let outChannels { try check(outChannels > 0 && outChannels < limit, "out_channels is out of range") }
        try check(patchSize == 1, "patch_size \(patchSize) is not supported (FLUX packs patches outside the model)")
        try check(attentionHeadDim % 2 == 0, "attention_head_dim \(attentionHeadDim) must be even for RoPE")
        try check(hiddenSize < limit, "hidden size \(hiddenSize) is out of range")
        try check(axesDimsRope.allSatisfy { $0 > 0 && $0 % 2 == 0 },
                  "axes_dims_rope \(axesDimsRope) must be positive even numbers")
        try check(axesDimsRope.reduce(0, +) == attentionHeadDim,
                  "axes_dims_rope \(axesDimsRope) must sum to attention_head_dim \(attentionHeadDim)")
    }
}
