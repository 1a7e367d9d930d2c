import FluxCore
import Foundation

/// Where each part of a text-to-image model lives on disk, resolved from what the user named.
///
/// Accepted: a diffusers pipeline folder (`model_index.json` with `transformer/`, `vae/`, `text_encoder/`,
/// `text_encoder_2/`, `tokenizer/`, `tokenizer_2/`, `scheduler/`); a Hugging Face hub id (`org/name`) already in the
/// local cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`; no network); or a Black Forest
/// Labs single-file transformer (`flux1-dev.safetensors`) whose VAE is `ae.safetensors` beside it (or `vae:`) and whose
/// text encoders, tokenizers and scheduler come from a pipeline folder (`textEncoders:`).
public struct PipelineComponents: Sendable {
    public let path: String
    public let transformer: TransformerCheckpoint
    public let vae: AutoencoderCheckpoint
    public let textEncoder: String
    public let textEncoder2: String
    public let tokenizer: String
    public let tokenizer2: String
    public let scheduler: SchedulerConfig

    /// Parts given separately, for single-file checkpoints.
    public struct Overrides: Sendable {
        public var textEncoders: String?
        public var vae: String?
        public var transformerConfig: FluxConfig?
        public init(textEncoders: String? = nil, vae: String? = nil, transformerConfig: FluxConfig? = nil) {
            (self.textEncoders, self.vae, self.transformerConfig) = (textEncoders, vae, transformerConfig)
        }
    }

    public static func resolve(_ model: String, overrides: Overrides = Overrides(),
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> PipelineComponents
    {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) {
            return isDirectory.boolValue
                ? try pipelineFolder(model, overrides: overrides)
                : try singleFile(model, overrides: overrides)
        }
        if looksLikeHubId(model) {
            return try pipelineFolder(try hubSnapshot(model, environment: environment), overrides: overrides)
        }
        throw ModelError.missingFile(path: model, expected:
            "a diffusers pipeline folder, a single-file checkpoint, or a Hugging Face id in the local cache")
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
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("model_index.json").path) else {
            throw ModelError.unknownLayout(path: folder, reason: "no model_index.json (not a diffusers pipeline folder)")
        }
        return PipelineComponents(
            path: folder,
            transformer: try TransformerCheckpoint.open(try part("transformer"), config: overrides.transformerConfig),
            vae: try AutoencoderCheckpoint.open(try overrides.vae ?? part("vae")),
            textEncoder: try part("text_encoder"), textEncoder2: try part("text_encoder_2"),
            tokenizer: try part("tokenizer"), tokenizer2: try part("tokenizer_2"),
            scheduler: try SchedulerConfig.load(contentsOf: try part("scheduler") + "/scheduler_config.json"))
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
                                  tokenizer2: text.tokenizer2, scheduler: text.scheduler)
    }

    static func looksLikeHubId(_ model: String) -> Bool {
        let parts = model.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
            && !model.hasPrefix("/") && !model.contains("\\")
    }

    /// The snapshot folder of a cached hub repository: the revision `refs/main` names, else the only snapshot.
    public static func hubSnapshot(_ id: String, environment: [String: String]) throws -> String {
        let cache = environment["HF_HUB_CACHE"]
            ?? environment["HF_HOME"].map { $0 + "/hub" }
            ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.cache/huggingface/hub"
        let repo = "\(cache)/models--\(id.replacingOccurrences(of: "/", with: "--"))"
        guard FileManager.default.fileExists(atPath: repo) else {
            throw ModelError.missingFile(path: repo, expected: "\(id) in the Hugging Face cache (no network access is attempted)")
        }
        if let main = try? String(contentsOfFile: repo + "/refs/main", encoding: .utf8) {
            let snapshot = "\(repo)/snapshots/\(main.trimmingCharacters(in: .whitespacesAndNewlines))"
            if FileManager.default.fileExists(atPath: snapshot) { return snapshot }
        }
        let snapshots = ((try? FileManager.default.contentsOfDirectory(atPath: repo + "/snapshots")) ?? []).sorted()
        guard snapshots.count == 1, let only = snapshots.first else {
            throw ModelError.missingFile(path: repo + "/snapshots", expected: snapshots.isEmpty
                ? "a downloaded snapshot" : "refs/main naming one of \(snapshots.count) snapshots")
        }
        return "\(repo)/snapshots/\(only)"
    }
}
