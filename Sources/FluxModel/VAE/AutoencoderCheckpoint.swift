import FluxCore
import Foundation

/// An `AutoencoderKL` checkpoint located on disk: its layout, config and weights under the diffusers names.
///
/// Accepted: a diffusers pipeline folder (its `vae/`), a diffusers VAE folder (`config.json` + safetensors), a
/// diffusers weights file (its folder's `config.json` if present, else the config is inferred), and an LDM-named
/// single file: Black Forest Labs' `ae.safetensors` (reported as `bfl-single-file`) or a Stable Diffusion file whose
/// VAE sits under `first_stage_model.` or `vae.`.
public struct AutoencoderCheckpoint: Sendable {
    public let path: String
    public let layout: CheckpointLayout
    public let config: AutoencoderConfig
    public let weights: WeightSource
    /// Every weight (diffusers name, shape) the encoder half (with `quant_conv`) and the decoder half (with
    /// `post_quant_conv`) of an autoencoder of `config` ask for (`AutoencoderKL.expectedWeights`).
    public let expectedEncoder: [ExpectedWeight]
    public let expectedDecoder: [ExpectedWeight]

    init(path: String, layout: CheckpointLayout, config: AutoencoderConfig, weights: WeightSource) throws {
        (self.path, self.layout, self.config, self.weights) = (path, layout, config, weights)
        expectedEncoder = try AutoencoderKL.expectedWeights(for: config, parts: .encoder)
        expectedDecoder = try AutoencoderKL.expectedWeights(for: config, parts: .decoder)
    }

    /// Opens `path`. `config` overrides what the checkpoint says; a single file has no config, and its architecture is
    /// read off the tensor shapes (see `inferConfig`).
    public static func open(_ path: String, config override: AutoencoderConfig? = nil) throws
        -> AutoencoderCheckpoint
    {
        if let location = try ComponentFolder.locate(path, component: "vae", what: "VAE") {
            let inner = try openDiffusersFolder(location.folder, override: override)
            return location.inPipeline
                ? try AutoencoderCheckpoint(path: path, layout: .diffusersPipeline, config: inner.config,
                                            weights: inner.weights)
                : inner
        }
        let checkpoint = try SafetensorsCheckpoint(path: path)
        if let prefix = ldmPrefix(checkpoint) {
            let levels = override?.levels ?? ldmLevels(checkpoint, prefix: prefix)
            let source = WeightSource(checkpoint: checkpoint, description: path,
                                      recipe: VAEKeyMap.ldmRecipe(prefix: prefix, levels: levels))
            let config = try override ?? inferConfig(source, path: path)
            try config.validate(source: path)
            return try AutoencoderCheckpoint(path: path, layout: .bflSingleFile, config: config, weights: source)
        }
        if isDiffusers(checkpoint) {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            return try openDiffusersFolder(folder, override: override, checkpoint: checkpoint, weightsPath: path)
        }
        throw ModelError.unknownLayout(path: path, reason:
            "no VAE tensors (neither LDM decoder.mid.block_1 / encoder.mid.block_1 nor diffusers mid_block names)")
    }

    private static func openDiffusersFolder(_ folder: String, override: AutoencoderConfig?,
                                            checkpoint given: SafetensorsCheckpoint? = nil,
                                            weightsPath: String? = nil) throws -> AutoencoderCheckpoint {
        let configPath = URL(fileURLWithPath: folder).appendingPathComponent("config.json").path
        let checkpoint = try given ?? SafetensorsCheckpoint(path: folder)
        guard isDiffusers(checkpoint) else {
            throw ModelError.unknownLayout(path: weightsPath ?? folder, reason:
                "no diffusers AutoencoderKL weights (decoder.mid_block / encoder.mid_block)")
        }
        let deprecated = ["encoder", "decoder"].contains {
            checkpoint.contains("\($0).mid_block.attentions.0.query.weight")
        }
        let source = WeightSource(checkpoint: checkpoint, description: weightsPath ?? folder,
                                  recipe: VAEKeyMap.diffusersRecipe(deprecatedAttention: deprecated))
        let config: AutoencoderConfig
        if let override {
            config = override
        } else if FileManager.default.fileExists(atPath: configPath) {
            config = try AutoencoderConfig.load(contentsOf: configPath)
        } else {
            config = try inferConfig(source, path: weightsPath ?? folder)
        }
        try config.validate(source: configPath)
        return try AutoencoderCheckpoint(path: folder, layout: .diffusersModel, config: config, weights: source)
    }

    static func isDiffusers(_ checkpoint: SafetensorsCheckpoint) -> Bool {
        ["encoder", "decoder"].contains { checkpoint.contains("\($0).mid_block.resnets.0.norm1.weight") }
    }

    /// The prefix before LDM names (`""`, `first_stage_model.`, `vae.`), if this is an LDM-named VAE.
    static func ldmPrefix(_ checkpoint: SafetensorsCheckpoint) -> String? {
        for name in checkpoint.names {
            for suffix in ["decoder.mid.block_1.norm1.weight", "encoder.mid.block_1.norm1.weight"]
            where name.hasSuffix(suffix) {
                let prefix = String(name.dropLast(suffix.count))
                if prefix.isEmpty || prefix.hasSuffix(".") { return prefix }
            }
        }
        return nil
    }

    /// Number of resolution levels of an LDM file: its decoder's `up.N` (or encoder's `down.N`) groups.
    static func ldmLevels(_ checkpoint: SafetensorsCheckpoint, prefix: String) -> Int {
        func count(_ group: String) -> Int {
            var n = 0
            while checkpoint.contains("\(prefix)\(group).\(n).block.0.conv1.weight") { n += 1 }
            return n
        }
        return max(count("decoder.up"), count("encoder.down"), 1)
    }

    /// Reads the architecture off the tensor shapes (diffusers names). What no shape shows: `norm_num_groups` is
    /// taken as 32 (FLUX.1, Stable Diffusion and BFL's code all use 32) when every width is a multiple of 32, else it is
    /// an error asking for a config; `scaling_factor`/`shift_factor` are FLUX.1's for 16 latent channels, else
    /// diffusers' defaults (they are not used by `decode`/`encode`).
    public static func inferConfig(_ w: WeightSource, path: String) throws -> AutoencoderConfig {
        func shape(_ name: String, rank: Int) throws -> [Int] {
            guard let s = w.shape(name) else { throw ModelError.missingWeight(name: name, source: path) }
            guard s.count == rank else {
                throw ModelError.weightShape(name: name, shape: s, expected: Array(repeating: -1, count: rank),
                                             source: path)
            }
            return s
        }
        func count(_ name: (Int) -> String) -> Int {
            var n = 0
            while w.contains(name(n)) { n += 1 }
            return n
        }
        let hasEncoder = w.contains("encoder.conv_in.weight"), hasDecoder = w.contains("decoder.conv_in.weight")
        guard hasEncoder || hasDecoder else {
            throw ModelError.missingWeight(name: "decoder.conv_in.weight", source: path)
        }
        var c = AutoencoderConfig()
        if hasEncoder {
            c.inChannels = try shape("encoder.conv_in.weight", rank: 4)[1]
            let levels = count { "encoder.down_blocks.\($0).resnets.0.conv1.weight" }
            c.blockOutChannels = try (0..<levels).map {
                try shape("encoder.down_blocks.\($0).resnets.0.conv1.weight", rank: 4)[0]
            }
            c.layersPerBlock = count { "encoder.down_blocks.0.resnets.\($0).conv1.weight" }
            c.latentChannels = try shape("encoder.conv_out.weight", rank: 4)[0] / 2
        }
        if hasDecoder {
            c.outChannels = try shape("decoder.conv_out.weight", rank: 4)[0]
            c.latentChannels = try shape("decoder.conv_in.weight", rank: 4)[1]
            if !hasEncoder {
                let levels = count { "decoder.up_blocks.\($0).resnets.0.conv1.weight" }
                c.blockOutChannels = try (0..<levels).reversed().map {
                    try shape("decoder.up_blocks.\($0).resnets.0.conv1.weight", rank: 4)[0]
                }
                c.layersPerBlock = count { "decoder.up_blocks.0.resnets.\($0).conv1.weight" } - 1
            }
        }
        c.downBlockTypes = Array(repeating: AutoencoderConfig.downBlockType, count: c.levels)
        c.upBlockTypes = Array(repeating: AutoencoderConfig.upBlockType, count: c.levels)
        c.useQuantConv = w.contains("quant_conv.weight")
        c.usePostQuantConv = w.contains("post_quant_conv.weight")
        c.midBlockAddAttention = ["encoder", "decoder"].contains { w.contains("\($0).mid_block.attentions.0.to_q.weight") }
        guard c.blockOutChannels.allSatisfy({ $0 % 32 == 0 }) else {
            throw ModelError.invalidConfig(source: path, reason:
                "norm_num_groups cannot be read from the tensors and widths \(c.blockOutChannels) are not multiples of 32; give a config.json (--config)")
        }
        c.normNumGroups = 32
        if c.latentChannels == AutoencoderConfig.flux.latentChannels {
            c.scalingFactor = AutoencoderConfig.flux.scalingFactor
            c.shiftFactor = AutoencoderConfig.flux.shiftFactor
        }
        try c.validate(source: path)
        return c
    }

    /// Which halves the checkpoint holds weights for.
    public var availableParts: AutoencoderParts {
        var parts: AutoencoderParts = []
        if weights.contains("encoder.conv_in.weight") { parts.insert(.encoder) }
        if weights.contains("decoder.conv_in.weight") { parts.insert(.decoder) }
        return parts
    }

    /// Builds the autoencoder (or one half) on `backend`, uploading its weights.
    public func load(on backend: any Backend, parts: AutoencoderParts = .all) throws -> AutoencoderKL {
        try AutoencoderKL(config: config, weights: ModuleWeights(backend: backend, source: weights), parts: parts)
    }

    /// Every weight `parts` ask for.
    public func expected(parts: AutoencoderParts = .all) -> [ExpectedWeight] {
        (parts.contains(.encoder) ? expectedEncoder : []) + (parts.contains(.decoder) ? expectedDecoder : [])
    }

    /// How the stored tensors match what `parts` ask for. Only tensors under an LDM file's prefix can be unexpected
    /// (a Stable Diffusion file holds other models beside its `first_stage_model.`).
    public func check(parts: AutoencoderParts = .all) -> CheckpointCheck {
        let prefix = layout == .bflSingleFile ? Self.ldmPrefix(weights.checkpoint) ?? "" : ""
        return CheckpointCheck.compare(expected: expected(parts: parts), available: weights,
                                       inScope: { $0.hasPrefix(prefix) })
    }

    /// Diffusers names the architecture expects in `parts` but the checkpoint lacks.
    public func missingWeights(parts: AutoencoderParts = .all) -> [String] { check(parts: parts).missing }

    /// Stored tensors that no expected weight reads (for an LDM file with a prefix, only names under the prefix).
    public func unexpectedTensors() -> [String] { check().unexpected }
}
