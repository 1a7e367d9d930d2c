import ArgumentParser
import FluxCore
import FluxModel
import Foundation

/// `fluxserve eval COMPONENT`: runs one component on tensors from a safetensors file, so that it can be checked against
/// an outside reference. Tensor names are the argument names of the diffusers `forward` of that component.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one model component on saved tensors (safetensors in, safetensors out).",
        subcommands: [EvalTransformer.self, EvalCLIP.self, EvalT5.self, EvalVAEDecode.self, EvalVAEEncode.self,
                      EvalPipeline.self])
}

/// Options every `eval` component takes.
struct EvalOptions: ParsableArguments {
    @Option(help: "A diffusers pipeline or component folder, a single-file checkpoint, a Hugging Face id in the local cache (org/name), or 'demo'.")
    var model: String

    @Option(help: "Input tensors (safetensors), named as the diffusers forward arguments.")
    var inputs: String

    @Option(name: [.short, .customLong("output")], help: "Where to write the output tensors (safetensors).")
    var output: String

    @OptionGroup var device: DeviceOptions

    /// `--model` as a path on disk (demo and hub ids resolved as every command does).
    func modelPath() throws -> String { try ModelLocator().path(for: model) }
}

/// The tensors of an inputs file, with shape checks that name the tensor.
struct EvalInputs {
    let file: SafetensorsFile

    init(path: String) throws { file = try SafetensorsFile(path: path) }

    func require(_ name: String, expected: String) throws -> HostTensor {
        guard file.info(name) != nil else { throw ModelError.missingInput(name: name, expected: expected) }
        return try file.tensor(name)
    }

    func optional(_ name: String) throws -> HostTensor? {
        file.info(name) == nil ? nil : try file.tensor(name)
    }
}

struct EvalTransformer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transformer",
        abstract: "FluxTransformer2DModel.forward: hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids[, guidance] → sample.")

    @OptionGroup var options: EvalOptions

    @Option(help: "A diffusers transformer config.json to use instead of the checkpoint's (needed for single files whose head dim is not 128).")
    var config: String?

    @OptionGroup var quantization: QuantizationOptions
    @OptionGroup(title: "LoRA") var lora: LoRAOptions

    func run() throws {
        try reportingErrors {
            let backend = try options.device.makeBackend()
            let override = try config.map { try FluxConfig.load(contentsOf: $0) }
            let checkpoint = try TransformerCheckpoint.open(try options.modelPath(), config: override)
            let c = checkpoint.config
            let lowRank = try transformerDeltas(config: c)
            let inputs = try EvalInputs(path: options.inputs)

            let hidden = try inputs.require("hidden_states", expected: "(B, S_img, \(c.inChannels))")
            guard hidden.shape.count == 3, hidden.shape[2] == c.inChannels else {
                throw ModelError.inputShape(name: "hidden_states", shape: hidden.shape,
                                            expected: "(B, S_img, \(c.inChannels))")
            }
            let (batch, imageTokens) = (hidden.shape[0], hidden.shape[1])
            let encoder = try inputs.require("encoder_hidden_states",
                                             expected: "(\(batch), S_txt, \(c.jointAttentionDim))")
            guard encoder.shape.count == 3, encoder.shape[0] == batch, encoder.shape[2] == c.jointAttentionDim else {
                throw ModelError.inputShape(name: "encoder_hidden_states", shape: encoder.shape,
                                            expected: "(\(batch), S_txt, \(c.jointAttentionDim))")
            }
            let textTokens = encoder.shape[1]
            let pooled = try inputs.require("pooled_projections", expected: "(\(batch), \(c.pooledProjectionDim))")
            guard pooled.shape == [batch, c.pooledProjectionDim] else {
                throw ModelError.inputShape(name: "pooled_projections", shape: pooled.shape,
                                            expected: "(\(batch), \(c.pooledProjectionDim))")
            }
            let timestep = try batchValues(inputs.require("timestep", expected: "(\(batch))"), "timestep", batch)
            let guidance = try inputs.optional("guidance").map { try batchValues($0, "guidance", batch) }
            if c.guidanceEmbeds && guidance == nil {
                throw ModelError.missingInput(name: "guidance", expected: "(\(batch)) for a guidance-distilled model")
            }
            let axes = c.axesDimsRope.count
            let imgIds = try positionIds(inputs.require("img_ids", expected: "(\(imageTokens), \(axes))"),
                                         "img_ids", imageTokens, axes)
            let txtIds = try positionIds(inputs.require("txt_ids", expected: "(\(textTokens), \(axes))"),
                                         "txt_ids", textTokens, axes)

            let model: FluxTransformer
            if case let .runtime(mode) = lora.application {
                let slots = LowRankSlots(mode)
                model = try checkpoint.load(on: backend, quantization: quantization.quantize, slots: slots)
                try slots.apply(lowRank, on: backend)
            } else {
                model = try checkpoint.load(on: backend, quantization: quantization.quantize, lowRank: lowRank)
            }
            let sample = try model(img: try backend.upload(hidden), txt: try backend.upload(encoder),
                                   y: try backend.upload(pooled), timesteps: timestep,
                                   guidance: c.guidanceEmbeds ? guidance : nil,
                                   pe: try model.positionEmbedding(txtIds: txtIds, imgIds: imgIds))
            try writeSafetensors(["sample": try backend.download(sample)],
                                 metadata: ["producer": "fluxserve \(fluxServeVersion)", "component": "transformer"],
                                 to: options.output)
        }
    }
}

extension EvalTransformer {
    /// The `--lora` stack's updates of this transformer's weights, checked against `config` before any weight loads.
    /// The transformer runs alone, so text-encoder modules are left out, and said so on one line.
    func transformerDeltas(config: FluxConfig) throws -> LowRankDeltas {
        let full = try lora.stack()
        guard !full.isEmpty else { return [:] }
        let stack = LoRAStack(full.entries.map { entry in
            LoRAStack.Entry(file: entry.file.restricted(to: [.transformer]), scale: entry.scale)
        })
        let deltas = try LoRAOptions.check { try stack.deltas(for: LoRATargets(transformer: config)) }
        // Said once the rest has passed, so that a refusal stays one line.
        let skipped = zip(full.entries, stack.entries).map { $0.file.modules.count - $1.file.modules.count }
        if skipped.reduce(0, +) > 0 {
            let files = zip(full.entries, skipped).filter { $1 > 0 }.map { "\($0.file.name) (\($1))" }
            printError("note: eval transformer runs the transformer alone; text-encoder LoRA modules skipped: "
                + files.joined(separator: ", "))
        }
        return deltas[.transformer] ?? [:]
    }
}

/// One value per batch item from a (B,) tensor (a scalar is broadcast, as diffusers' `timestep.expand`).
func batchValues(_ t: HostTensor, _ name: String, _ batch: Int) throws -> [Float] {
    let values = t.floats()
    if values.count == 1 && t.shape.count <= 1 { return Array(repeating: values[0], count: batch) }
    guard t.shape == [batch] else { throw ModelError.inputShape(name: name, shape: t.shape, expected: "(\(batch))") }
    return values
}

/// Position ids (S, axes) as rows; a leading batch axis of 1 is dropped (diffusers accepts and warns on 3-D ids).
func positionIds(_ t: HostTensor, _ name: String, _ tokens: Int, _ axes: Int) throws -> [[Double]] {
    var shape = t.shape
    if shape.count == 3 && shape[0] >= 1 { shape.removeFirst() }
    guard shape == [tokens, axes] else {
        throw ModelError.inputShape(name: name, shape: t.shape, expected: "(\(tokens), \(axes))")
    }
    let values = t.floats()
    return (0..<tokens).map { row in (0..<axes).map { Double(values[row * axes + $0]) } }
}
