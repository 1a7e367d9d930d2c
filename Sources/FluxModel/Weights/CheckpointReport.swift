import FluxCore
import Foundation

/// What a checkpoint holds, as `fluxserve inspect` reports it: a FLUX transformer, a VAE, a CLIP or T5 text encoder
/// (as a file or its own folder), or a whole diffusers pipeline of them.
public struct CheckpointReport: Codable, Sendable {
    /// Tensor statistics of one component (a pipeline subfolder, or the file itself).
    public struct Component: Codable, Sendable {
        public var name: String
        public var files: Int
        public var tensors: Int
        public var parameters: Int
        public var bytes: Int
        /// dtype → number of tensors.
        public var dtypes: [String: Int]
    }

    /// Which network a set of tensors is.
    public enum ModelKind: String, Codable, Sendable {
        case transformer
        case vae
        case clip = "clip-text-encoder"
        case t5 = "t5-encoder"

        /// The name in messages ("3 VAE weights missing").
        public var title: String {
            switch self {
            case .transformer: "FLUX transformer"
            case .vae: "VAE"
            case .clip: "CLIP text encoder"
            case .t5: "T5 encoder"
            }
        }
    }

    /// One architecture figure (`latent channels` = `16`), in the order a reader wants them.
    public struct Fact: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
    }

    /// A network found, its architecture, and how the stored names and shapes match it.
    public struct Model: Codable, Sendable {
        /// The pipeline subfolder, or the file or folder name.
        public var component: String
        public var kind: ModelKind
        public var layout: CheckpointLayout
        public var architecture: [Fact]
        public var check: CheckpointCheck
    }

    /// The transformer architecture found, and how the stored names match it.
    public struct Transformer: Codable, Sendable {
        public var variant: String
        public var configSource: String
        public var config: FluxConfig
        public var missing: [String]
        public var unexpected: [String]
    }

    public var path: String
    public var layout: CheckpointLayout
    public var components: [Component]
    /// Every network found, in component order.
    public var models: [Model]
    /// The transformer's config and names, when there is one.
    public var transformer: Transformer?
    /// Why the checkpoint cannot be loaded; empty when it can.
    public var problems: [String]
    /// What a pipeline folder or a transformer does with an input image (`ModelVariant`), when known.
    public var variant: ModelVariant?

    public var isLoadable: Bool { problems.isEmpty }

    /// Inspects a file or folder. Only unreadable input throws; a readable but incomplete checkpoint is reported with
    /// its problems. `config` overrides a transformer's config.
    public static func inspect(_ path: String, config override: FluxConfig? = nil) throws -> CheckpointReport {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError.missingFile(path: path, expected: "a checkpoint file or folder")
        }
        var report = CheckpointReport(path: path, layout: .unknown, components: [], models: [], transformer: nil,
                                      problems: [])
        let url = URL(fileURLWithPath: path)
        if isDirectory.boolValue,
           FileManager.default.fileExists(atPath: url.appendingPathComponent("model_index.json").path)
        {
            report.layout = .diffusersPipeline
            report.variant = try? ModelVariant.of(modelIndex: url.appendingPathComponent("model_index.json").path)
            let subfolders = (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? []
            for name in subfolders {
                let folder = url.appendingPathComponent(name).path
                guard containsSafetensors(folder) else { continue }
                let checkpoint = try SafetensorsCheckpoint(path: folder)
                report.components.append(component(name, checkpoint))
                report.describe(folder, named: name, checkpoint, override: override)
            }
            if !subfolders.contains("transformer") {
                report.problems.append("no transformer/ folder")
            } else if !containsSafetensors(url.appendingPathComponent("transformer").path) {
                report.problems.append("transformer/: no .safetensors files")
            }
        } else if isDirectory.boolValue && !containsSafetensors(path) {
            report.problems.append("\(path): no .safetensors files (nor model_index.json)")
        } else {
            let checkpoint = try SafetensorsCheckpoint(path: path)
            report.components.append(component(url.lastPathComponent, checkpoint))
            report.describe(path, named: url.lastPathComponent, checkpoint, override: override)
            if let model = report.models.first { report.layout = model.layout }
            if let config = report.transformer?.config { report.variant = ModelVariant.of(singleFile: path, config: config) }
        }
        return report
    }

    /// Which network `checkpoint`'s tensors are, by the names each layout is recognised by.
    public static func kind(of checkpoint: SafetensorsCheckpoint) -> ModelKind? {
        if TransformerCheckpoint.bflPrefix(checkpoint) != nil || checkpoint.contains("x_embedder.weight") {
            return .transformer
        }
        if AutoencoderCheckpoint.ldmPrefix(checkpoint) != nil || AutoencoderCheckpoint.isDiffusers(checkpoint) {
            return .vae
        }
        if CLIPCheckpoint.storedPrefix(checkpoint) != nil { return .clip }
        if T5Checkpoint.holdsEncoder(checkpoint) { return .t5 }
        return nil
    }

    /// Opens `path` as the network its tensors are and adds its model entry, or the reason it cannot be opened.
    private mutating func describe(_ path: String, named name: String, _ checkpoint: SafetensorsCheckpoint,
                                   override: FluxConfig?) {
        guard let kind = Self.kind(of: checkpoint) else {
            problems.append("\(name): no FLUX transformer, VAE, CLIP or T5 tensors")
            return
        }
        do {
            let model: Model
            switch kind {
            case .transformer:
                let opened = try TransformerCheckpoint.open(path, config: override)
                let check = opened.check()
                let configSource = override != nil ? "given" : opened.layout == .bflSingleFile
                    ? "inferred from tensor shapes" : "config.json"
                transformer = Transformer(variant: opened.variant, configSource: configSource, config: opened.config,
                                          missing: check.missing, unexpected: check.unexpected)
                model = Model(component: name, kind: kind, layout: opened.layout,
                              architecture: Self.facts(opened.config, variant: opened.variant,
                                                       configSource: configSource),
                              check: check)
            case .vae:
                let opened = try AutoencoderCheckpoint.open(path)
                // A decoder-only (or encoder-only) file is complete for what it holds.
                let parts = opened.availableParts.isEmpty ? AutoencoderParts.all : opened.availableParts
                model = Model(component: name, kind: kind, layout: opened.layout,
                              architecture: Self.facts(opened.config, parts: parts), check: opened.check(parts: parts))
            case .clip:
                let opened = try CLIPCheckpoint.open(path)
                model = Model(component: name, kind: kind, layout: .diffusersModel,
                              architecture: Self.facts(opened.config, prefix: opened.prefix), check: opened.check())
            case .t5:
                let opened = try T5Checkpoint.open(path)
                model = Model(component: name, kind: kind, layout: .diffusersModel,
                              architecture: Self.facts(opened.config), check: opened.check())
            }
            models.append(model)
            problems += model.check.problems(kind.title)
        } catch let error as ModelError {
            problems.append(error.description)
        } catch {
            problems.append("\(path): \(error)")
        }
    }

    private static func facts(_ c: FluxConfig, variant: String, configSource: String) -> [Fact] {
        [Fact(name: "variant", value: variant), Fact(name: "config", value: configSource),
         Fact(name: "double blocks", value: "\(c.numLayers)"),
         Fact(name: "single blocks", value: "\(c.numSingleLayers)"),
         Fact(name: "heads", value: "\(c.numAttentionHeads) × \(c.attentionHeadDim) = \(c.hiddenSize)"),
         Fact(name: "channels", value: "in \(c.inChannels) → out \(c.outputChannels)"),
         Fact(name: "text", value: "\(c.jointAttentionDim)"), Fact(name: "pooled", value: "\(c.pooledProjectionDim)"),
         Fact(name: "RoPE axes", value: "\(c.axesDimsRope)"),
         Fact(name: "guidance embedding", value: c.guidanceEmbeds ? "yes" : "no")]
    }

    private static func facts(_ c: AutoencoderConfig, parts: AutoencoderParts) -> [Fact] {
        let halves = [parts.contains(.encoder) ? "encoder" : nil, parts.contains(.decoder) ? "decoder" : nil]
        return [Fact(name: "parts", value: halves.compactMap { $0 }.joined(separator: " + ")),
                Fact(name: "latent channels", value: "\(c.latentChannels)"),
                Fact(name: "block channels", value: "\(c.blockOutChannels)"),
                Fact(name: "layers per block", value: "\(c.layersPerBlock)"),
                Fact(name: "image channels", value: "in \(c.inChannels) → out \(c.outChannels)"),
                Fact(name: "downsampling", value: "×\(c.downsamplingFactor)"),
                Fact(name: "norm groups", value: "\(c.normNumGroups)"),
                Fact(name: "mid-block attention", value: c.midBlockAddAttention ? "yes" : "no"),
                Fact(name: "quant convs", value: "\(c.useQuantConv ? "yes" : "no") / \(c.usePostQuantConv ? "yes" : "no")"),
                Fact(name: "scaling", value: "\(c.scalingFactor), shift \(c.shiftFactor.map { "\($0)" } ?? "none")")]
    }

    private static func facts(_ c: CLIPConfig, prefix: String) -> [Fact] {
        [Fact(name: "layers", value: "\(c.numHiddenLayers)"), Fact(name: "hidden", value: "\(c.hiddenSize)"),
         Fact(name: "heads", value: "\(c.numAttentionHeads) × \(c.headDim)"),
         Fact(name: "MLP", value: "\(c.intermediateSize) (\(c.hiddenAct))"),
         Fact(name: "vocab", value: "\(c.vocabSize)"), Fact(name: "positions", value: "\(c.maxPositionEmbeddings)"),
         Fact(name: "stored prefix", value: prefix.isEmpty ? "none" : prefix)]
    }

    private static func facts(_ c: T5Config) -> [Fact] {
        [Fact(name: "layers", value: "\(c.numLayers)"), Fact(name: "d_model", value: "\(c.dModel)"),
         Fact(name: "heads", value: "\(c.numHeads) × \(c.dKv)"),
         Fact(name: "FF", value: "\(c.dFf) (\(c.feedForwardProj))"), Fact(name: "vocab", value: "\(c.vocabSize)"),
         Fact(name: "relative buckets",
              value: "\(c.relativeAttentionNumBuckets), max distance \(c.relativeAttentionMaxDistance)")]
    }

    private static func containsSafetensors(_ folder: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).contains { $0.hasSuffix(".safetensors") }
    }

    private static func component(_ name: String, _ checkpoint: SafetensorsCheckpoint) -> Component {
        var c = Component(name: name, files: checkpoint.files.count, tensors: 0, parameters: 0, bytes: 0, dtypes: [:])
        for tensorName in checkpoint.names {
            guard let info = checkpoint.info(tensorName) else { continue }
            c.tensors += 1
            c.parameters += info.shape.reduce(1, *)
            c.bytes += info.byteRange.count
            c.dtypes[info.dtype.rawValue, default: 0] += 1
        }
        return c
    }
}
