import Foundation

/// Architecture of a T5 encoder, with the field names of transformers' `T5Config` (config.json).
///
/// Defaults are `T5Config`'s (transformers 5.24, the original t5-small). FLUX.1's `text_encoder_2/` is T5 v1.1 XXL's
/// encoder: vocab 32128, d_model 4096, 64 heads × d_kv 64, d_ff 10240 gated-GELU, 24 layers, 32 relative-position
/// buckets up to distance 128, RMS norm ε 1e-6.
public struct T5Config: Codable, Equatable, Sendable {
    public var vocabSize = 32128
    public var dModel = 512
    public var dKv = 64
    public var dFf = 2048
    public var numLayers = 6
    public var numHeads = 8
    public var relativeAttentionNumBuckets = 32
    public var relativeAttentionMaxDistance = 128
    public var layerNormEpsilon: Float = 1e-6
    /// `ACT` (one input projection `wi`) or `gated-ACT` (`wi_0`, `wi_1`); `gated-gelu` means `gelu_new`.
    public var feedForwardProj = "relu"

    public init() {}

    /// Width of the attention's inner projections: heads × d_kv (may differ from d_model).
    public var innerDim: Int { numHeads * dKv }

    /// Whether the feed-forward is `wo(act(wi_0 x) · wi_1 x)` rather than `wo(act(wi x))`.
    public var isGatedAct: Bool { feedForwardProj.split(separator: "-").first == "gated" }

    /// transformers' `dense_act_fn`: the last part of `feed_forward_proj`, except `gated-gelu` → `gelu_new`
    /// (`T5Config.__post_init__`, kept for old checkpoints).
    public var denseActFn: String {
        feedForwardProj == "gated-gelu" ? "gelu_new" : String(feedForwardProj.split(separator: "-").last ?? "")
    }

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", dModel = "d_model", dKv = "d_kv", dFf = "d_ff", numLayers = "num_layers"
        case numHeads = "num_heads", relativeAttentionNumBuckets = "relative_attention_num_buckets"
        case relativeAttentionMaxDistance = "relative_attention_max_distance"
        case layerNormEpsilon = "layer_norm_epsilon", feedForwardProj = "feed_forward_proj"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = T5Config()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        dModel = try c.decodeIfPresent(Int.self, forKey: .dModel) ?? d.dModel
        dKv = try c.decodeIfPresent(Int.self, forKey: .dKv) ?? d.dKv
        dFf = try c.decodeIfPresent(Int.self, forKey: .dFf) ?? d.dFf
        numLayers = try c.decodeIfPresent(Int.self, forKey: .numLayers) ?? d.numLayers
        numHeads = try c.decodeIfPresent(Int.self, forKey: .numHeads) ?? d.numHeads
        relativeAttentionNumBuckets = try c.decodeIfPresent(Int.self, forKey: .relativeAttentionNumBuckets)
            ?? d.relativeAttentionNumBuckets
        relativeAttentionMaxDistance = try c.decodeIfPresent(Int.self, forKey: .relativeAttentionMaxDistance)
            ?? d.relativeAttentionMaxDistance
        layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? d.layerNormEpsilon
        feedForwardProj = try c.decodeIfPresent(String.self, forKey: .feedForwardProj) ?? d.feedForwardProj
    }

    /// Reads a transformers `config.json` of a T5 model (`model_type` `t5` or `mt5`, the same architecture); only the
    /// encoder is used.
    public static func load(contentsOf path: String) throws -> T5Config {
        let object = try readConfigObject(path, expected: "a T5 encoder config.json")
        if let modelType = object["model_type"] as? String, modelType != "t5", modelType != "mt5" {
            throw ModelError.invalidConfig(source: path, reason:
                "model_type \(modelType) is not a T5 encoder (expected t5)")
        }
        let config = try decodeConfig(T5Config.self, from: object, path: path)
        try config.validate(source: path)
        return config
    }

    /// Checks the numbers are a buildable network, and refuses what transformers itself cannot run.
    public func validate(source: String) throws {
        func check(_ ok: Bool, _ reason: String) throws {
            if !ok { throw ModelError.invalidConfig(source: source, reason: reason) }
        }
        let limit = 1 << 24
        for (name, value) in [("vocab_size", vocabSize), ("d_model", dModel), ("d_kv", dKv), ("d_ff", dFf),
                              ("num_heads", numHeads), ("relative_attention_max_distance", relativeAttentionMaxDistance)] {
            try check(value > 0 && value < limit, "\(name) = \(value) is out of range")
        }
        try check(numLayers >= 0 && numLayers < 10_000, "num_layers = \(numLayers) is out of range")
        try check(innerDim < limit, "num_heads × d_kv = \(innerDim) is out of range")
        // Bidirectional buckets: half per direction, half of those exact. Fewer than 4 leaves no exact bucket, and
        // max distance equal to the exact range divides by log(1) = 0 (both fail in transformers too).
        try check(relativeAttentionNumBuckets >= 4 && relativeAttentionNumBuckets < limit,
                  "relative_attention_num_buckets = \(relativeAttentionNumBuckets) must be at least 4")
        try check(relativeAttentionMaxDistance != relativeAttentionNumBuckets / 4,
                  "relative_attention_max_distance \(relativeAttentionMaxDistance) must differ from num_buckets / 4")
        let parts = feedForwardProj.split(separator: "-", omittingEmptySubsequences: false)
        try check(parts.count == 1 || (parts.count == 2 && parts[0] == "gated"),
                  "feed_forward_proj \(feedForwardProj) is not ACT or gated-ACT")
        try check(HiddenActivation(transformersName: denseActFn) != nil,
                  "feed_forward_proj \(feedForwardProj): activation \(denseActFn) is not supported (\(HiddenActivation.supportedNames))")
        try check(layerNormEpsilon.isFinite && layerNormEpsilon > 0,
                  "layer_norm_epsilon \(layerNormEpsilon) must be positive")
    }
}

extension T5Config {
    /// FLUX.1's text_encoder_2: T5 v1.1 XXL encoder (google/t5-v1_1-xxl `config.json`).
    public static let xxl: T5Config = {
        var c = T5Config()
        (c.vocabSize, c.dModel, c.dKv, c.dFf, c.numLayers, c.numHeads) = (32128, 4096, 64, 10240, 24, 64)
        c.feedForwardProj = "gated-gelu"
        return c
    }()
}
