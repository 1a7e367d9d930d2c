import FluxCPU
import FluxCore
@testable import FluxModel
import Foundation
import Testing

/// LoRAs in every format (`tools/reference/make_lora_fixtures.py`) against diffusers 0.42.1 + peft 0.21.2 on the tiny
/// random dev pipeline: `load_lora_weights` per file, `set_adapters` with the case's weights (one file, a scale of
/// 0.7, stacks of two and three formats with negative weights). The transformer's sample and the whole pipeline's
/// image must match within 1e-3 (f32, CPU); each LoRA moves them by 11–59 %, so a module left out or a wrong scale
/// fails.
@Suite struct LoRAParityTests {
    static let cases: [String] = {
        let folder = fixturePath("lora", "cases")
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
            .filter { $0.hasSuffix(".transformer.safetensors") }
            .map { String($0.dropLast(".transformer.safetensors".count)) }
    }()

    @Test func fixturesArePresent() { #expect(Self.cases.count >= 11) }

    /// The case's LoRA files with their weights, as its metadata lists them; checks each file's detected format.
    static func stack(_ metadata: [String: String]) throws -> LoRAStack {
        struct Entry: Decodable { let file: String; let format: String; let scale: Double }
        let entries = try JSONDecoder().decode([Entry].self, from: Data((metadata["loras"] ?? "[]").utf8))
        return LoRAStack(try entries.map { entry in
            let file = try LoRAFile.open(fixturePath("lora", entry.file))
            #expect(file.format == entry.format, "\(entry.file)")
            return LoRAStack.Entry(file: file, scale: entry.scale)
        })
    }

    static let pipelinePath = fixturePath("pipeline", "dev_tiny")

    @Test(arguments: cases) func transformerMatchesDiffusers(_ name: String) throws {
        let expected = try SafetensorsFile(path: fixturePath("lora", "cases", "\(name).transformer.safetensors"))
        let components = try PipelineComponents.resolve(Self.pipelinePath)
        let deltas = try Self.stack(expected.metadata).deltas(for: try components.loraTargets())
        let sample = try Self.runTransformer(components.transformer, lowRank: deltas[.transformer] ?? [:])
        let error = maxRelativeError(sample, try expected.tensor("sample").floats())
        print("LoRA transformer parity \(name): max relative error \(error)")
        #expect(error <= 1e-3)
    }

    @Test(arguments: cases) func imageMatchesDiffusers(_ name: String) throws {
        let inputs = try SafetensorsFile(path: fixturePath("lora", "cases", "\(name).inputs.safetensors"))
        let expected = try SafetensorsFile(path: fixturePath("lora", "cases", "\(name).image.safetensors"))
        let backend = CPUBackend()
        let components = try PipelineComponents.resolve(Self.pipelinePath)
        let pipeline = try FluxPipeline(components, backend: backend, loras: try Self.stack(expected.metadata))
        let evalCase = try PipelineEvalCase(metadata: expected.metadata,
                                            tensor: { inputs.info($0) == nil ? nil : try inputs.tensor($0) },
                                            defaults: try PipelineDefaults.of(components), source: name)
        let result = try pipeline.generate(evalCase.request, latents: try backend.upload(evalCase.latents))
        let reference = try expected.tensor("image")
        #expect(result.images.shape == reference.shape)
        let error = maxRelativeError(result.images.floats(), reference.floats())
        print("LoRA pipeline parity \(name): max relative error \(error)")
        #expect(error <= 1e-3)
    }

    /// One pipeline built for LoRAs run beside the weights, switched through every case and back to none without a
    /// reload: each case matches diffusers as the merged path does, and after the last switch the image is bit for
    /// bit that of a pipeline that never had a LoRA (nothing drifts).
    @Test(arguments: [LowRankSlots.Mode.beside, .swap]) func switchingAtRuntimeMatchesEveryCase(_ mode: LowRankSlots.Mode) throws {
        let backend = CPUBackend()
        let components = try PipelineComponents.resolve(Self.pipelinePath)
        let pipeline = try FluxPipeline(components, backend: backend, lora: .runtime(mode))
        var request: GenerationRequest?
        var latents: HostTensor?
        for name in Self.cases {
            let inputs = try SafetensorsFile(path: fixturePath("lora", "cases", "\(name).inputs.safetensors"))
            let expected = try SafetensorsFile(path: fixturePath("lora", "cases", "\(name).image.safetensors"))
            try pipeline.setLoRAs(try Self.stack(expected.metadata))
            let evalCase = try PipelineEvalCase(metadata: expected.metadata,
                                                tensor: { inputs.info($0) == nil ? nil : try inputs.tensor($0) },
                                                defaults: try PipelineDefaults.of(components), source: name)
            (request, latents) = (evalCase.request, evalCase.latents)
            let result = try pipeline.generate(evalCase.request, latents: try backend.upload(evalCase.latents))
            let error = maxRelativeError(result.images.floats(), try expected.tensor("image").floats())
            print("LoRA runtime (\(mode)) switch to \(name): max relative error \(error)")
            #expect(error <= 1e-3, "\(name)")
        }
        try pipeline.setLoRAs(LoRAStack())
        let back = try pipeline.generate(request!, latents: try backend.upload(latents!))
        let fresh = try FluxPipeline(components, backend: backend)
            .generate(request!, latents: try backend.upload(latents!))
        #expect(back.images.floats() == fresh.images.floats())
    }

    /// With fp8 weights the LoRA is merged before quantizing, so it moves the output as much as in f32 (the peers'
    /// "LoRA does nothing on fp8" bug would leave the fp8 output where fp8 without LoRA is).
    @Test func fp8CarriesTheLoRA() throws {
        let components = try PipelineComponents.resolve(Self.pipelinePath)
        let expected = try SafetensorsFile(path: fixturePath("lora", "cases", "kohya.transformer.safetensors"))
        let deltas = try Self.stack(expected.metadata).deltas(for: try components.loraTargets())[.transformer]!
        let base = try Self.runTransformer(components.transformer, lowRank: [:])
        let baseFP8 = try Self.runTransformer(components.transformer, lowRank: [:], quantization: .fp8)
        let lora = try Self.runTransformer(components.transformer, lowRank: deltas)
        let loraFP8 = try Self.runTransformer(components.transformer, lowRank: deltas, quantization: .fp8)
        let runtimeFP8 = try Self.runTransformer(components.transformer, runtime: deltas, quantization: .fp8)
        let swapFP8 = try Self.runTransformer(components.transformer, runtime: deltas, mode: .swap, quantization: .fp8)
        #expect(maxRelativeError(swapFP8, loraFP8) < 1e-6, "swapping in a merged copy = merging at load")
        let change = maxRelativeError(lora, base), changeFP8 = maxRelativeError(loraFP8, baseFP8)
        let changeRuntime = maxRelativeError(runtimeFP8, baseFP8)
        let reference = try expected.tensor("sample").floats()
        let error = maxRelativeError(loraFP8, reference), runtimeError = maxRelativeError(runtimeFP8, reference)
        print("LoRA fp8: change \(change) (f32) vs \(changeFP8) (fp8 merged), \(changeRuntime) (fp8 + LoRA beside); "
              + "vs diffusers f32 \(error) (merged), \(runtimeError) (beside)")
        #expect(change > 0.1)
        #expect(abs(changeFP8 - change) < 0.25 * change)
        #expect(abs(changeRuntime - change) < 0.25 * change)
        #expect(error < 0.1 && runtimeError < 0.1)
    }

    /// The transformer of `checkpoint` with `lowRank` merged, on the LoRA fixtures' inputs (f32 CPU).
    /// `runtime`: run those beside the weights instead (`LowRankSlots`).
    static func runTransformer(_ checkpoint: TransformerCheckpoint, lowRank: LowRankDeltas = [:],
                               runtime: LowRankDeltas? = nil, mode: LowRankSlots.Mode = .beside,
                               quantization: LinearQuantization = .none) throws
        -> [Float]
    {
        let backend = CPUBackend()
        let slots = runtime.map { _ in LowRankSlots(mode) }
        let model = try checkpoint.load(on: backend, quantization: quantization, lowRank: lowRank, slots: slots)
        if let runtime { try slots?.apply(runtime, on: backend) }
        let inputs = try SafetensorsFile(path: fixturePath("lora", "transformer_inputs.safetensors"))
        func ids(_ key: String) throws -> [[Double]] {
            let t = try inputs.tensor(key), values = t.floats(), axes = t.shape[1]
            return (0..<t.shape[0]).map { r in (0..<axes).map { Double(values[r * axes + $0]) } }
        }
        let sample = try model(img: try backend.upload(try inputs.tensor("hidden_states")),
                               txt: try backend.upload(try inputs.tensor("encoder_hidden_states")),
                               y: try backend.upload(try inputs.tensor("pooled_projections")),
                               timesteps: try inputs.tensor("timestep").floats(),
                               guidance: try inputs.tensor("guidance").floats(),
                               pe: try model.positionEmbedding(txtIds: try ids("txt_ids"), imgIds: try ids("img_ids")))
        return try backend.floats(sample)
    }
}
