import FluxCore
import Foundation

/// How a checkpoint on disk is organised.
public enum CheckpointLayout: String, Sendable, Codable {
    /// A diffusers pipeline folder: `model_index.json`, `transformer/`, `vae/`, `text_encoder/`, ...
    case diffusersPipeline = "diffusers-pipeline"
    /// A diffusers model folder: `config.json` + `diffusion_pytorch_model*.safetensors` (+ index json).
    case diffusersModel = "diffusers-model"
    /// A Black Forest Labs single file: `flux1-dev.safetensors` with `double_blocks.N...` names.
    case bflSingleFile = "bfl-single-file"
    case unknown
}

/// A FLUX transformer checkpoint located on disk: its layout, config and weights under the reference names.
public struct TransformerCheckpoint: Sendable {
    public let path: String
    public let layout: CheckpointLayout
    public let config: FluxConfig
    public let weights: WeightSource
    /// Every weight (reference name, shape) a transformer of `config` asks for (`FluxTransformer.expectedWeights`).
    public let expected: [ExpectedWeight]

    init(path: String, layout: CheckpointLayout, config: FluxConfig, weights: WeightSource) throws {
        (self.path, self.layout, self.config, self.weights) = (path, layout, config, weights)
        expected = try FluxTransformer.expectedWeights(for: config)
    }

    /// Opens a diffusers pipeline folder (its `transformer/`), a diffusers transformer folder, a diffusers weights
    /// file or index, or a BFL single file. `config` overrides what the checkpoint says (a BFL file has no config; its
    /// shape is inferred from the tensors, and RoPE axes default to FLUX.1's (16, 56, 56) for head dim 128).
    public static func open(_ path: String, config override: FluxConfig? = nil) throws -> TransformerCheckpoint {
        if let location = try ComponentFolder.locate(path, component: "transformer", what: "FLUX transformer") {
            let inner = try openDiffusersFolder(location.folder, override: override)
            return location.inPipeline
                ? try TransformerCheckpoint(path: path, layout: .diffusersPipeline, config: inner.config,
                                            weights: inner.weights)
                : inner
        }
        let checkpoint = try SafetensorsCheckpoint(path: path)
        if let prefix = bflPrefix(checkpoint) {
            let source = WeightSource(checkpoint: checkpoint, description: path,
                                      recipe: FluxKeyMap.bflRecipe(prefix: prefix))
            let config = try override ?? inferConfig(source, path: path)
            return try TransformerCheckpoint(path: path, layout: .bflSingleFile, config: config, weights: source)
        }
        if checkpoint.contains("x_embedder.weight") {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            return try openDiffusersFolder(folder, override: override, checkpoint: checkpoint, weightsPath: path)
        }
        throw ModelError.unknownLayout(path: path, reason:
            "no FLUX transformer tensors (neither BFL img_in.weight nor diffusers x_embedder.weight)")
    }

    private static func openDiffusersFolder(_ folder: String, override: FluxConfig?,
                                            checkpoint given: SafetensorsCheckpoint? = nil,
                                            weightsPath: String? = nil) throws -> TransformerCheckpoint {
        let configPath = URL(fileURLWithPath: folder).appendingPathComponent("config.json").path
        let config = try override ?? FluxConfig.load(contentsOf: configPath)
        let checkpoint = try given ?? SafetensorsCheckpoint(path: folder)
        let source = WeightSource(checkpoint: checkpoint, description: weightsPath ?? folder,
                                  recipe: FluxKeyMap.diffusersRecipe)
        guard source.contains("img_in.weight") else {
            throw ModelError.unknownLayout(path: folder, reason: "no diffusers transformer weights (x_embedder.weight)")
        }
        return try TransformerCheckpoint(path: folder, layout: .diffusersModel, config: config, weights: source)
    }

    /// The prefix before BFL names (`""`, or `model.diffusion_model.` in ComfyUI files), if this is a BFL file.
    static func bflPrefix(_ checkpoint: SafetensorsCheckpoint) -> String? {
        for name in checkpoint.names where name.hasSuffix("img_in.weight") {
            let prefix = String(name.dropLast("img_in.weight".count))
            if prefix.isEmpty || prefix.hasSuffix(".") { return prefix }
        }
        return nil
    }

    /// Reads the architecture off the tensor shapes (reference names). RoPE axes are not visible in any shape: for head
    /// dim 128 they are FLUX.1's (16, 56, 56); for anything else the caller must give a config.
    public static func inferConfig(_ w: WeightSource, path: String) throws -> FluxConfig {
        func shape(_ name: String) throws -> [Int] {
            guard let s = w.shape(name), !s.isEmpty else { throw ModelError.missingWeight(name: name, source: path) }
            return s
        }
        func countBlocks(_ prefix: String) -> Int {
            var n = 0
            while w.contains("\(prefix).\(n).\(prefix == "double_blocks" ? "img_mod.lin" : "modulation.lin").weight") {
                n += 1
            }
            return n
        }
        var c = FluxConfig()
        let imgIn = try shape("img_in.weight")
        guard imgIn.count == 2 else {
            throw ModelError.weightShape(name: "img_in.weight", shape: imgIn, expected: [-1, -1], source: path)
        }
        let hidden = imgIn[0]
        c.inChannels = imgIn[1]
        c.jointAttentionDim = try shape("txt_in.weight").last ?? 0
        c.pooledProjectionDim = try shape("vector_in.in_layer.weight").last ?? 0
        c.guidanceEmbeds = w.contains("guidance_in.in_layer.weight")
        c.numLayers = countBlocks("double_blocks")
        c.numSingleLayers = countBlocks("single_blocks")
        let normName = c.numLayers > 0 ? "double_blocks.0.img_attn.norm.query_norm.scale"
            : "single_blocks.0.norm.query_norm.scale"
        let headDim = c.numLayers + c.numSingleLayers > 0 ? try shape(normName)[0] : 128
        guard headDim > 0, hidden % headDim == 0 else {
            throw ModelError.invalidConfig(source: path, reason: "hidden size \(hidden) is not a multiple of head dim \(headDim)")
        }
        c.attentionHeadDim = headDim
        c.numAttentionHeads = hidden / headDim
        let out = try shape("final_layer.linear.weight")[0]
        c.outChannels = out == c.inChannels ? nil : out
        guard headDim == 128 else {
            throw ModelError.invalidConfig(source: path, reason:
                "RoPE axes cannot be read from a single file with head dim \(headDim) (FLUX.1 has 128); give a config.json with axes_dims_rope (--config)")
        }
        try c.validate(source: path)
        return c
    }

    /// Which published model this is, by architecture.
    public var variant: String {
        config == .dev ? "FLUX.1-dev" : config == .schnell ? "FLUX.1-schnell" : "custom"
    }

    /// Builds the transformer on `backend`, uploading every weight (LoRA updates merged, then the blocks' linear
    /// layers quantized as told).
    /// `slots`: give every linear layer a slot there for LoRAs run beside the weights.
    public func load(on backend: any Backend, quantization: LinearQuantization = .none,
                     lowRank: LowRankDeltas = [:], slots: LowRankSlots? = nil) throws -> FluxTransformer {
        var w = ModuleWeights(backend: backend, source: weights, lowRank: lowRank)
        w.lowRankSlots = slots
        return try FluxTransformer(config: config, weights: w, quantization: quantization)
    }

    /// How the stored tensors match what the architecture asks for.
    public func check() -> CheckpointCheck { CheckpointCheck.compare(expected: expected, available: weights) }

    /// Names the architecture expects but the checkpoint lacks (reference names).
    public func missingWeights() -> [String] { check().missing }

    /// Stored tensors that no expected weight reads.
    public func unexpectedTensors() -> [String] { check().unexpected }
}
