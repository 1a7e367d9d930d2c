import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// The one checkpoint check, on corrupted copies of each component's fixture: one tensor removed, one added, one of
/// the wrong shape. Each must be named by the component's checkpoint type, by `fluxserve inspect`'s report, and (for
/// the missing one) by the loader's error.
@Suite struct CheckpointCheckTests {
    /// A corruption of one fixture folder: which stored tensor goes, which gets one row too many, and the reference
    /// names the check must report for them.
    struct Case: CustomStringConvertible, Sendable {
        let kind: CheckpointReport.ModelKind
        let folder: String
        let file: String
        let removed: String
        let reshaped: String
        let missing: String
        let mismatched: String

        var description: String { kind.rawValue }
    }

    static let cases = [
        // diffusers stores BFL's fused qkv as three parts: one part gone is the fused weight missing.
        Case(kind: .transformer, folder: fixturePath("transformer", "dev_tiny", "diffusers"),
             file: "diffusion_pytorch_model.safetensors", removed: "transformer_blocks.0.attn.to_k.weight",
             reshaped: "context_embedder.weight", missing: "double_blocks.0.img_attn.qkv.weight",
             mismatched: "txt_in.weight"),
        Case(kind: .vae, folder: fixturePath("vae", "flux_l16", "diffusers"),
             file: "diffusion_pytorch_model.safetensors", removed: "decoder.mid_block.resnets.0.conv1.bias",
             reshaped: "encoder.conv_out.bias", missing: "decoder.mid_block.resnets.0.conv1.bias",
             mismatched: "encoder.conv_out.bias"),
        Case(kind: .clip, folder: fixturePath("text_encoders", "clip_eos_first", "model"), file: "model.safetensors",
             removed: "encoder.layers.0.mlp.fc1.bias", reshaped: "final_layer_norm.weight",
             missing: "encoder.layers.0.mlp.fc1.bias", mismatched: "final_layer_norm.weight"),
        Case(kind: .t5, folder: fixturePath("text_encoders", "t5_gated_gelu", "model"), file: "model.safetensors",
             removed: "encoder.block.1.layer.1.DenseReluDense.wi_1.weight", reshaped: "encoder.final_layer_norm.weight",
             missing: "encoder.block.1.layer.1.DenseReluDense.wi_1.weight",
             mismatched: "encoder.final_layer_norm.weight"),
    ]

    static let extra = "extra.unused.weight"

    /// `c.folder`'s config.json and tensors in a new folder, corrupted as `c` says.
    static func corruptedCopy(_ c: Case) throws -> URL {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fluxserve-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: URL(fileURLWithPath: c.folder).appendingPathComponent("config.json").path,
                                         toPath: out.appendingPathComponent("config.json").path)
        let source = try SafetensorsCheckpoint(path: c.folder)
        var tensors: [String: HostTensor] = [:]
        for name in source.names { tensors[name] = try source.tensor(name) }
        #expect(tensors.removeValue(forKey: c.removed) != nil, "\(c.removed) is not in the fixture")
        tensors[extra] = HostTensor([1, 2, 3], shape: [3])
        let original = try #require(tensors[c.reshaped], "\(c.reshaped) is not in the fixture")
        let shape = [original.shape[0] + 1] + original.shape.dropFirst()
        tensors[c.reshaped] = HostTensor([Float](repeating: 0.5, count: shape.reduce(1, *)), shape: shape)
        try writeSafetensors(tensors, to: out.appendingPathComponent(c.file).path)
        return out
    }

    /// The check of `path` by the component's own checkpoint type.
    static func check(_ kind: CheckpointReport.ModelKind, _ path: String) throws -> CheckpointCheck {
        switch kind {
        case .transformer: try TransformerCheckpoint.open(path).check()
        case .vae: try AutoencoderCheckpoint.open(path).check()
        case .clip: try CLIPCheckpoint.open(path).check()
        case .t5: try T5Checkpoint.open(path).check()
        }
    }

    @Test(arguments: CheckpointCheckTests.cases)
    func fixtureIsClean(_ c: Case) throws {
        let check = try Self.check(c.kind, c.folder)
        #expect(check.missing.isEmpty && check.shapeMismatches.isEmpty && !check.unexpected.contains(Self.extra))
    }

    @Test(arguments: CheckpointCheckTests.cases)
    func removedExtraAndReshapedTensorsAreNamed(_ c: Case) throws {
        let folder = try Self.corruptedCopy(c)
        defer { try? FileManager.default.removeItem(at: folder) }
        let check = try Self.check(c.kind, folder.path)
        #expect(check.missing == [c.missing])
        #expect(check.unexpected == [Self.extra])
        #expect(check.shapeMismatches.map(\.name) == [c.mismatched])
        #expect(check.shapeMismatches.first?.stored?.first == check.shapeMismatches.first.map { $0.expected[0] + 1 })

        let report = try CheckpointReport.inspect(folder.path)
        #expect(!report.isLoadable)
        #expect(report.models.map(\.kind) == [c.kind])
        #expect(report.models.first?.check == check)
        #expect(report.problems.contains { $0.contains(c.missing) })
        #expect(report.problems.contains { $0.contains(c.mismatched) })
    }

    @Test(arguments: CheckpointCheckTests.cases)
    func loadingNamesTheFileAndTheMissingTensor(_ c: Case) throws {
        let folder = try Self.corruptedCopy(c)
        defer { try? FileManager.default.removeItem(at: folder) }
        let backend = CPUBackend()
        do {
            switch c.kind {
            case .transformer: _ = try TransformerCheckpoint.open(folder.path).load(on: backend)
            case .vae: _ = try AutoencoderCheckpoint.open(folder.path).load(on: backend)
            case .clip: _ = try CLIPCheckpoint.open(folder.path).load(on: backend)
            case .t5: _ = try T5Checkpoint.open(folder.path).load(on: backend)
            }
            Issue.record("loading a corrupted \(c.kind.rawValue) succeeded")
        } catch let error as ModelError {
            // Whichever fault the module tree reaches first, the message names the folder and the weight.
            let message = error.description
            #expect(message.contains(folder.path))
            #expect(message.contains(c.missing) || message.contains(c.mismatched), "\(message)")
        }
    }

    @Test func listNamesTheFirstFewThenACount() {
        #expect(CheckpointCheck.list(["a", "b"]) == "a, b")
        #expect(CheckpointCheck.list((1...8).map { "w\($0)" }) == "w1, w2, w3, w4, w5 and 3 more")
        let check = CheckpointCheck(missing: (1...7).map { "w\($0)" }, unexpected: ["x"], shapeMismatches: [])
        #expect(check.problems("VAE") == ["7 VAE weights missing: w1, w2, w3, w4, w5 and 2 more"])
        #expect(!check.isComplete)
    }
}

/// `fluxserve inspect` on each kind of component folder or file, and on a whole pipeline.
@Suite struct InspectComponentTests {
    func fact(_ model: CheckpointReport.Model?, _ name: String) -> String? {
        model?.architecture.first { $0.name == name }?.value
    }

    @Test func vaeFolderIsDescribed() throws {
        // (The fixtures' tiny ae.safetensors files have widths that hide norm_num_groups: inspect reports that.)
        for (path, layout) in [(fixturePath("vae", "flux_l16", "diffusers"), CheckpointLayout.diffusersModel)] {
            let report = try CheckpointReport.inspect(path)
            #expect(report.isLoadable, "\(report.problems)")
            #expect(report.layout == layout)
            #expect(report.models.map(\.kind) == [.vae])
            #expect(report.transformer == nil)
            let vae = report.models.first
            #expect(fact(vae, "latent channels") == "16")
            #expect(fact(vae, "block channels") == "[8, 16]")
            #expect(fact(vae, "parts") == "encoder + decoder")
        }
    }

    @Test func clipFolderIsDescribed() throws {
        let path = fixturePath("text_encoders", "clip_eos_first", "model")
        let config = try CLIPConfig.load(contentsOf: path + "/config.json")
        let report = try CheckpointReport.inspect(path)
        #expect(report.isLoadable, "\(report.problems)")
        #expect(report.models.map(\.kind) == [.clip])
        #expect(fact(report.models.first, "layers") == "\(config.numHiddenLayers)")
        #expect(fact(report.models.first, "vocab") == "\(config.vocabSize)")
        #expect(report.components.first?.tensors == (try CLIPCheckpoint.open(path)).weights.checkpoint.names.count)
    }

    @Test func t5FolderIsDescribed() throws {
        let path = fixturePath("text_encoders", "t5_relu_small_buckets", "model")
        let config = try T5Config.load(contentsOf: path + "/config.json")
        let report = try CheckpointReport.inspect(path)
        #expect(report.isLoadable, "\(report.problems)")
        #expect(report.models.map(\.kind) == [.t5])
        #expect(fact(report.models.first, "layers") == "\(config.numLayers)")
        #expect(fact(report.models.first, "d_model") == "\(config.dModel)")
        #expect(report.components.first?.files == 5)
    }

    @Test func pipelineDescribesEveryComponent() throws {
        let report = try CheckpointReport.inspect(fixturePath("pipeline", "dev_tiny"))
        #expect(report.isLoadable, "\(report.problems)")
        #expect(report.layout == .diffusersPipeline)
        #expect(report.models.map(\.component) == ["text_encoder", "text_encoder_2", "transformer", "vae"])
        #expect(report.models.map(\.kind) == [.clip, .t5, .transformer, .vae])
        #expect(report.transformer != nil)
    }

    @Test func pipelineSubfoldersAreDescribedOnTheirOwn() throws {
        for (name, kind) in [("vae", CheckpointReport.ModelKind.vae), ("text_encoder", .clip),
                             ("text_encoder_2", .t5), ("transformer", .transformer)] {
            let report = try CheckpointReport.inspect(fixturePath("pipeline", "dev_tiny", name))
            #expect(report.isLoadable, "\(name): \(report.problems)")
            #expect(report.models.map(\.kind) == [kind])
        }
    }
}
