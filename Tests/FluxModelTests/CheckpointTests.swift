import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// Layout detection, config inference and the errors for incomplete or mismatched checkpoints, on checkpoints built
/// here with random weights.
@Suite struct CheckpointTests {
    /// A small architecture with FLUX.1's head dim (128), so a BFL file's config can be inferred completely.
    static let smallConfig: FluxConfig = {
        var c = FluxConfig()
        c.numLayers = 1
        c.numSingleLayers = 2
        c.numAttentionHeads = 1
        c.inChannels = 16
        c.jointAttentionDim = 24
        c.pooledProjectionDim = 8
        c.guidanceEmbeds = true
        return c
    }()

    /// Random bf16 weights for every reference name of `config`, renamed by `name`.
    static func weights(_ config: FluxConfig, name: (String) -> String = { $0 }) -> [String: HostTensor] {
        var rng = SystemRandomNumberGenerator()
        var out: [String: HostTensor] = [:]
        for (key, shape) in FluxKeyMap.referenceShapes(for: config) {
            let bits = (0..<shape.reduce(1, *)).map { _ in floatToBfloat16(Float.random(in: -0.05...0.05, using: &rng)) }
            out[name(key)] = bits.withUnsafeBytes { HostTensor(copying: $0, shape: shape, dtype: .bf16) }
        }
        return out
    }

    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fluxserve-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func bflFileWithComfyPrefixInfersTheWholeConfig() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("flux-small.safetensors").path
        try writeSafetensors(Self.weights(Self.smallConfig) { "model.diffusion_model." + $0 }, to: path)
        let checkpoint = try TransformerCheckpoint.open(path)
        #expect(checkpoint.layout == .bflSingleFile)
        #expect(checkpoint.config == Self.smallConfig)
        #expect(checkpoint.missingWeights().isEmpty)
        let report = try CheckpointReport.inspect(path)
        #expect(report.isLoadable)
        #expect(report.transformer?.config == Self.smallConfig)
        #expect(report.components.first?.dtypes == ["BF16": FluxKeyMap.referenceNames(for: Self.smallConfig).count])
        _ = try checkpoint.load(on: CPUBackend())
    }

    @Test func fullSizeConfigsAreNamed() {
        #expect(FluxConfig.dev.guidanceEmbeds && !FluxConfig.schnell.guidanceEmbeds)
        // 11.9 B parameters, as published for FLUX.1.
        let parameters = FluxKeyMap.referenceShapes(for: .dev).reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(parameters > 11_800_000_000 && parameters < 12_000_000_000)
    }

    @Test func missingWeightIsReportedByName() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var tensors = Self.weights(Self.smallConfig)
        tensors["single_blocks.1.linear2.weight"] = nil
        let path = folder.appendingPathComponent("flux.safetensors").path
        try writeSafetensors(tensors, to: path)
        let report = try CheckpointReport.inspect(path)
        #expect(!report.isLoadable)
        // Without single block 1's modulation the count stays 2 (blocks are counted by their modulation).
        #expect(report.transformer?.missing == ["single_blocks.1.linear2.weight"])
        let checkpoint = try TransformerCheckpoint.open(path)
        #expect(throws: ModelError.missingWeight(name: "single_blocks.1.linear2.weight", source: path)) {
            try checkpoint.load(on: CPUBackend())
        }
    }

    @Test func wrongShapeIsReportedWithBothShapes() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var tensors = Self.weights(Self.smallConfig)
        let bad = [Float](repeating: 0, count: 128 * 7)
        tensors["double_blocks.0.txt_attn.proj.weight"] = HostTensor(bad, shape: [128, 7])
        let path = folder.appendingPathComponent("flux.safetensors").path
        try writeSafetensors(tensors, to: path)
        let checkpoint = try TransformerCheckpoint.open(path)
        #expect(throws: ModelError.weightShape(name: "double_blocks.0.txt_attn.proj.weight", shape: [128, 7],
                                               expected: [128, 128], source: path)) {
            try checkpoint.load(on: CPUBackend())
        }
        #expect(!(try CheckpointReport.inspect(path)).isLoadable)
    }

    @Test func unexpectedTensorsAreListed() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var tensors = Self.weights(Self.smallConfig)
        tensors["lora_unet_extra.alpha"] = HostTensor([1], shape: [1])
        let path = folder.appendingPathComponent("flux.safetensors").path
        try writeSafetensors(tensors, to: path)
        let report = try CheckpointReport.inspect(path)
        #expect(report.transformer?.unexpected == ["lora_unet_extra.alpha"])
        #expect(report.isLoadable)
    }

    @Test func pipelineFolderUsesItsTransformer() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("{\"_class_name\": \"FluxPipeline\"}".utf8).write(to: folder.appendingPathComponent("model_index.json"))
        try FileManager.default.copyItem(atPath: fixturePath("transformer", "dev_tiny", "diffusers"),
                                         toPath: folder.appendingPathComponent("transformer").path)
        let checkpoint = try TransformerCheckpoint.open(folder.path)
        #expect(checkpoint.layout == .diffusersPipeline)
        #expect(checkpoint.config.numSingleLayers == 3)
        let report = try CheckpointReport.inspect(folder.path)
        #expect(report.layout == .diffusersPipeline)
        #expect(report.components.map(\.name) == ["transformer"])
        #expect(report.isLoadable)
    }

    @Test func badConfigAndUnknownFilesGiveClearErrors() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // A config whose RoPE axes do not add up to the head dim.
        try FileManager.default.copyItem(atPath: fixturePath("transformer", "dev_tiny", "diffusers"),
                                         toPath: folder.appendingPathComponent("t").path)
        let configURL = folder.appendingPathComponent("t/config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        json["axes_dims_rope"] = [4, 4, 4]
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        #expect(throws: ModelError.self) { try TransformerCheckpoint.open(folder.appendingPathComponent("t").path) }
        // Not JSON at all.
        try Data("{not json".utf8).write(to: configURL)
        #expect(throws: ModelError.self) { try TransformerCheckpoint.open(folder.appendingPathComponent("t").path) }
        // A valid safetensors file that is not a transformer.
        let other = folder.appendingPathComponent("vae.safetensors").path
        try writeSafetensors(["decoder.conv_in.weight": HostTensor([1, 2], shape: [2])], to: other)
        #expect(throws: ModelError.self) { try TransformerCheckpoint.open(other) }
        #expect(!(try CheckpointReport.inspect(other)).isLoadable)
        // Nothing there.
        #expect(throws: ModelError.self) { try TransformerCheckpoint.open(folder.appendingPathComponent("nope").path) }
    }

    @Test func diffusersNamesRoundTripThroughTheKeyMap() {
        // Every diffusers tensor is read by exactly one reference weight, except the q/k/v parts shared by a concat.
        let names = FluxKeyMap.referenceNames(for: .dev)
        let sources = names.flatMap { FluxKeyMap.diffusersRecipe($0).sources }
        #expect(Set(sources).count == sources.count)
        #expect(sources.allSatisfy { !$0.hasPrefix("double_blocks") && !$0.hasPrefix("single_blocks") })
        #expect(FluxKeyMap.diffusersRecipe("final_layer.adaLN_modulation.1.weight") == .swapHalves("norm_out.linear.weight"))
        #expect(FluxKeyMap.diffusersRecipe("single_blocks.3.linear1.bias") == .concat([
            "single_transformer_blocks.3.attn.to_q.bias", "single_transformer_blocks.3.attn.to_k.bias",
            "single_transformer_blocks.3.attn.to_v.bias", "single_transformer_blocks.3.proj_mlp.bias"]))
    }
}
