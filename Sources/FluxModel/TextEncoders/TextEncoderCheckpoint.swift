import FluxCore
import Foundation

/// A text encoder's own folder (config.json + weights) from what a user names: they come as folders only.
enum TextEncoderFolder {
    static func resolve(_ path: String, component: String, what: String) throws -> String {
        guard let location = try ComponentFolder.locate(path, component: component, what: what) else {
            throw ModelError.unknownLayout(path: path, reason:
                "\(what) is a folder (config.json + model*.safetensors), not a single file")
        }
        return location.folder
    }

    static func configPath(_ folder: String) -> String { ComponentFolder.configPath(folder) }
}

/// A CLIP text encoder located on disk: its config and weights under the transformers 5 names.
public struct CLIPCheckpoint: Sendable {
    /// The encoder's own folder.
    public let path: String
    public let config: CLIPConfig
    public let weights: WeightSource
    /// What the stored names carry before the reference names: `""` (transformers 5) or `text_model.` (older
    /// transformers, and the published FLUX.1 folders).
    public let prefix: String
    /// Every weight (reference name, shape) an encoder of `config` asks for (`CLIPTextModel.expectedWeights`).
    public let expected: [ExpectedWeight]

    /// Opens a pipeline folder (its `text_encoder/`) or a CLIP text encoder folder: `config.json` and
    /// `model.safetensors`, or shards with their index.
    public static func open(_ path: String, component: String = "text_encoder") throws -> CLIPCheckpoint {
        let folder = try TextEncoderFolder.resolve(path, component: component, what: "CLIP text encoder")
        let config = try CLIPConfig.load(contentsOf: TextEncoderFolder.configPath(folder))
        let checkpoint = try SafetensorsCheckpoint(path: folder)
        guard let prefix = storedPrefix(checkpoint) else {
            throw ModelError.unknownLayout(path: folder, reason: "no CLIP text weights (\(anchor))")
        }
        let source = WeightSource(checkpoint: checkpoint, description: folder) { .rename(prefix + $0) }
        return CLIPCheckpoint(path: folder, config: config, weights: source, prefix: prefix,
                              expected: try CLIPTextModel.expectedWeights(for: config))
    }

    /// The weight that marks a CLIP text encoder.
    static let anchor = "embeddings.token_embedding.weight"

    /// What the stored names carry before the reference names, if `checkpoint` holds a CLIP text encoder.
    static func storedPrefix(_ checkpoint: SafetensorsCheckpoint) -> String? {
        guard let stored = checkpoint.names.first(where: { $0.hasSuffix(anchor) }),
              case let prefix = String(stored.dropLast(anchor.count)), prefix.isEmpty || prefix.hasSuffix(".")
        else { return nil }
        return prefix
    }

    /// Builds the encoder on `backend`, uploading every weight.
    public func load(on backend: any Backend, lowRank: LowRankDeltas = [:], slots: LowRankSlots? = nil) throws
        -> CLIPTextModel
    {
        var w = ModuleWeights(backend: backend, source: weights, lowRank: lowRank)
        w.lowRankSlots = slots
        return try CLIPTextModel(config: config, weights: w)
    }

    /// How the stored tensors match what the architecture asks for.
    public func check() -> CheckpointCheck { CheckpointCheck.compare(expected: expected, available: weights) }

    /// Names the architecture expects but the checkpoint lacks (reference names).
    public func missingWeights() -> [String] { check().missing }

    /// Stored tensors that no expected weight reads (e.g. a vision tower or projection next to the text model).
    public func unexpectedTensors() -> [String] { check().unexpected }
}

/// A T5 encoder located on disk: its config and weights under the transformers names.
public struct T5Checkpoint: Sendable {
    /// The encoder's own folder.
    public let path: String
    public let config: T5Config
    public let weights: WeightSource
    /// Every weight (reference name, shape) an encoder of `config` asks for (`T5Encoder.expectedWeights`).
    public let expected: [ExpectedWeight]

    /// Opens a pipeline folder (its `text_encoder_2/`) or a T5 folder (`T5EncoderModel`, or a whole T5 model whose
    /// decoder is ignored): `config.json` and `model.safetensors`, or shards with their index.
    public static func open(_ path: String, component: String = "text_encoder_2") throws -> T5Checkpoint {
        let folder = try TextEncoderFolder.resolve(path, component: component, what: "T5 encoder")
        let config = try T5Config.load(contentsOf: TextEncoderFolder.configPath(folder))
        let checkpoint = try SafetensorsCheckpoint(path: folder)
        // transformers ties encoder.embed_tokens to shared; files may hold either name or both.
        let sharedStored = checkpoint.contains("shared.weight") ? "shared.weight" : "encoder.embed_tokens.weight"
        guard holdsEncoder(checkpoint) else {
            throw ModelError.unknownLayout(path: folder, reason:
                "no T5 encoder weights (shared.weight, encoder.block.0.layer.0.SelfAttention.q.weight)")
        }
        let source = WeightSource(checkpoint: checkpoint, description: folder) {
            .rename($0 == "shared.weight" ? sharedStored : $0)
        }
        return T5Checkpoint(path: folder, config: config, weights: source,
                            expected: try T5Encoder.expectedWeights(for: config))
    }

    /// Whether `checkpoint` holds a T5 encoder (its embedding under either name, or its first attention).
    static func holdsEncoder(_ checkpoint: SafetensorsCheckpoint) -> Bool {
        ["shared.weight", "encoder.embed_tokens.weight", "encoder.block.0.layer.0.SelfAttention.q.weight"]
            .contains { checkpoint.contains($0) }
    }

    /// Builds the encoder on `backend`, uploading every weight.
    public func load(on backend: any Backend, lowRank: LowRankDeltas = [:], slots: LowRankSlots? = nil) throws
        -> T5Encoder
    {
        var w = ModuleWeights(backend: backend, source: weights, lowRank: lowRank)
        w.lowRankSlots = slots
        return try T5Encoder(config: config, weights: w)
    }

    /// How the stored tensors match what the architecture asks for.
    public func check() -> CheckpointCheck { CheckpointCheck.compare(expected: expected, available: weights) }

    /// Names the architecture expects but the checkpoint lacks (reference names).
    public func missingWeights() -> [String] { check().missing }

    /// Stored tensors that no expected weight reads (a decoder, an LM head, a duplicate of the embedding).
    public func unexpectedTensors() -> [String] { check().unexpected }
}
