import Foundation

/// Architecture of a CLIP text encoder, with the field names of transformers' `CLIPTextConfig` (config.json).
///
/// Defaults are `CLIPTextConfig`'s (transformers 5.24). FLUX.1's `text_encoder/` is CLIP ViT-L/14's text tower:
/// vocab 49408, hidden 768 = 12 heads × 64, 12 layers, MLP 3072 with quick-GELU, 77 positions, LayerNorm ε 1e-5 and
/// the legacy `eos_token_id` 2 (pooling at the largest token id).
public struct CLIPConfig: Codable, Equatable, Sendable {
    public var vocabSize = 49408
    public var hiddenSize = 512
    public var intermediateSize = 2048
    public var numHiddenLayers = 12
    public var numAttentionHeads = 8
    public var maxPositionEmbeddings = 77
    /// transformers `ACT2FN` name of the MLP activation.
    public var hiddenAct = "quick_gelu"
    public var layerNormEps: Float = 1e-5
    /// Selects the pooled position: 2 means "argmax of input_ids" (configs from before transformers PR #24773),
    /// anything else "first position holding this id".
    public var eosTokenId: Int? = 49407

    public init() {}

    /// The value transformers treats as the legacy end-of-text id (`CLIPTextModel.forward`).
    public static let legacyEosTokenId = 2

    public var headDim: Int { hiddenSize / numAttentionHeads }

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps", eosTokenId = "eos_token_id"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPConfig()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
            ?? d.maxPositionEmbeddings
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        eosTokenId = c.contains(.eosTokenId) ? try c.decodeIfPresent(Int.self, forKey: .eosTokenId) : d.eosTokenId
    }

    /// Reads a transformers `config.json`: a `CLIPTextConfig` (`model_type` `clip_text_model`), or a full `CLIPConfig`
    /// (`model_type` `clip`), whose `text_config` is used.
    public static func load(contentsOf path: String) throws -> CLIPConfig {
        let object = try readConfigObject(path, expected: "a CLIP text encoder config.json")
        let modelType = object["model_type"] as? String
        var body = object
        if modelType == "clip" {
            guard let text = object["text_config"] as? [String: Any] else {
                throw ModelError.invalidConfig(source: path, reason: "a CLIPConfig without text_config")
            }
            body = text
        } else if let modelType, modelType != "clip_text_model" {
            throw ModelError.invalidConfig(source: path, reason:
                "model_type \(modelType) is not a CLIP text encoder (expected clip_text_model)")
        }
        let config = try decodeConfig(CLIPConfig.self, from: body, path: path)
        try config.validate(source: path)
        return config
    }

    /// Checks the numbers are a buildable network.
    public func validate(source: String) throws {
        func check(_ ok: Bool, _ reason: String) throws {
            if !ok { throw ModelError.invalidConfig(source: source, reason: reason) }
        }
        let limit = 1 << 24
        for (name, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize),
                              ("intermediate_size", intermediateSize), ("num_attention_heads", numAttentionHeads),
                              ("max_position_embeddings", maxPositionEmbeddings)] {
            try check(value > 0 && value < limit, "\(name) = \(value) is out of range")
        }
        try check(numHiddenLayers >= 0 && numHiddenLayers < 10_000,
                  "num_hidden_layers = \(numHiddenLayers) is out of range")
        try check(hiddenSize % numAttentionHeads == 0,
                  "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        try check(HiddenActivation(transformersName: hiddenAct) != nil,
                  "hidden_act \(hiddenAct) is not supported (\(HiddenActivation.supportedNames))")
        try check(layerNormEps.isFinite && layerNormEps > 0, "layer_norm_eps \(layerNormEps) must be positive")
        try check(eosTokenId != nil, "eos_token_id is null; the pooled output needs it")
    }
}

/// The JSON object of a config file, or a typed error naming the file.
func readConfigObject(_ path: String, expected: String) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ModelError.missingFile(path: path, expected: expected)
    }
    guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw ModelError.invalidConfig(source: path, reason: "not a JSON object")
    }
    return object
}

/// Decodes a config type from a JSON object, turning decoding failures into `ModelError.invalidConfig`.
func decodeConfig<T: Decodable>(_ type: T.Type, from object: [String: Any], path: String) throws -> T {
    do {
        let data = try JSONSerialization.data(withJSONObject: object)
        return try JSONDecoder().decode(type, from: data)
    } catch {
        throw ModelError.invalidConfig(source: path, reason: "\(error)")
    }
}

extension CLIPConfig {
    /// FLUX.1's text_encoder: CLIP ViT-L/14 text tower (openai/clip-vit-large-patch14; FLUX.1-dev's copy keeps the
    /// legacy eos_token_id 2, i.e. pooling at the argmax id).
    public static let vitL14: CLIPConfig = {
        var c = CLIPConfig()
        (c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads) = (768, 3072, 12, 12)
        c.eosTokenId = CLIPConfig.legacyEosTokenId
        return c
    }()
}
