import FluxCore
import Foundation

/// Where each part of a text-to-image model lives on disk, resolved from what the user named.
///
/// Accepted: a diffusers pipeline folder (`model_index.json` with `transformer/`, `vae/`, `text_encoder/`,
/// `text_encoder_2/`, `tokenizer/`, `tokenizer_2/`, `scheduler/`), or a Black Forest Labs single-file transformer
/// (`flux1-dev.safetensors`) whose text encoders, tokenizers and scheduler come from a pipeline folder
/// (`textEncoders:`) and whose VAE is, in this order: `vae:`, `ae.safetensors` beside the file, the `vae/` of the
/// `textEncoders:` folder.
public struct PipelineComponents: Sendable {
    public let path: String
    public let transformer: TransformerCheckpoint
    public let vae: AutoencoderCheckpoint
    public let textEncoder: String
    public let textEncoder2: String
    public let tokenizer: String
    public let tokenizer2: String
    public let scheduler: SchedulerConfig
    /// What the model does with an input image (Fill and Kontext checkpoints have their own pipelines).
    public let variant: ModelVariant

    /// Parts given separately, for single-file checkpoints.
    public struct Overrides: Sendable {
        public var textEncoders: String?
        public var vae: String?
        public var transformerConfig: FluxConfig?
        /// The model's variant when its files cannot tell (a Kontext single file under another name).
        public var variant: ModelVariant?
        public init(textEncoders: String? = nil, vae: String? = nil, transformerConfig: FluxConfig? = nil,
                    variant: ModelVariant? = nil) {
            (self.textEncoders, self.vae, self.transformerConfig, self.variant) =
                (textEncoders, vae, transformerConfig, variant)
        }
    }

    /// The parts of the model at `path`: a diffusers pipeline folder, or a single-file transformer with its text side
    /// and VAE in `overrides`. Names (`demo`, hub ids) are turned into paths by the caller (the command line's
    /// model locator). Overrides that do not apply to what `path` is are refused, never ignored.
    /// What a LoRA may adapt in these components: the transformer and both text encoders (configs only; no
    /// weights are read), so that `LoRAStack.deltas` can refuse a LoRA before anything loads.
    public func loraTargets() throws -> LoRATargets {
        try LoRATargets(transformer: transformer.config, clip: CLIPCheckpoint.open(textEncoder).config,
                        t5: T5Checkpoint.open(textEncoder2).config)
    }

    public static func resolve(_ path: String, overrides: Overrides = Overrides()) throws -> PipelineComponents {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError.missingFile(path: path, expected:
                "a diffusers pipeline folder, a single-file checkpoint, a Hugging Face id in the local cache, or demo")
        }
        guard isDirectory.boolValue else { return try singleFile(path, overrides: overrides) }
        if overrides.textEncoders != nil {
            throw ModelError.inapplicableOption(option: "--text-encoders", reason:
                "\(path) is a pipeline folder with its own text encoders; the option is for a single-file transformer")
        }
        if overrides.vae != nil {
            throw ModelError.inapplicableOption(option: "--vae", reason:
                "\(path) is a pipeline folder with its own vae/; the option is for a single-file transformer")
        }
        return try pipelineFolder(path, overrides: overrides)
    }

    /// A diffusers pipeline folder; `overrides.vae` may replace its VAE.
    static func pipelineFolder(_ folder: String, overrides: Overrides) throws -> PipelineComponents {
        let url = URL(fileURLWithPath: folder)
        func part(_ name: String) throws -> String {
            let path = url.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: path) else {
                throw ModelError.missingFile(path: path, expected: "the pipeline's \(name) folder")
            }
            return path
        }
        let index = url.appendingPathComponent("model_index.json").path
        guard FileManager.default.fileExists(atPath: index) else {
            throw ModelError.unknownLayout(path: folder, reason: "no model_index.json (not a diffusers pipeline folder)")
        }
        let transformer = try TransformerCheckpoint.open(try part("transformer"), config: overrides.transformerConfig)
        return PipelineComponents(
            path: folder, transformer: transformer,
            vae: try AutoencoderCheckpoint.open(try overrides.vae ?? part("vae")),
            textEncoder: try part("text_encoder"), textEncoder2: try part("text_encoder_2"),
            tokenizer: try part("tokenizer"), tokenizer2: try part("tokenizer_2"),
            scheduler: try SchedulerConfig.load(contentsOf: try part("scheduler") + "/scheduler_config.json"),
            variant: try overrides.variant ?? ModelVariant.of(modelIndex: index))
    }

    /// A BFL single-file transformer with its VAE and the text side from a pipeline folder.
    static func singleFile(_ file: String, overrides: Overrides) throws -> PipelineComponents {
        let transformer = try TransformerCheckpoint.open(file, config: overrides.transformerConfig)
        guard let textFolder = overrides.textEncoders else {
            throw ModelError.missingFile(path: file, expected:
                "text encoders for a single-file transformer: pass a pipeline folder with --text-encoders")
        }
        let sibling = URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("ae.safetensors").path
        let vaePath = overrides.vae ?? (FileManager.default.fileExists(atPath: sibling) ? sibling : textFolder)
        let text = try pipelineFolder(textFolder, overrides: Overrides(vae: vaePath))
        return PipelineComponents(path: file, transformer: transformer, vae: text.vae, textEncoder: text.textEncoder,
                                  textEncoder2: text.textEncoder2, tokenizer: text.tokenizer,
                                  tokenizer2: text.tokenizer2, scheduler: text.scheduler,
                                  variant: overrides.variant ?? ModelVariant.of(singleFile: file,
                                                                                config: transformer.config))
    }
}
