import FluxCore
import FluxModel
import Foundation
import Testing

/// The expected weights of each network come from building its module tree against a `WeightRecorder`. These tests
/// hold them against the hand-kept lists they replaced (`HandKeptWeightLists`) on every fixture and on the full-size
/// configs, and against the shapes the fixtures store.
@Suite struct WeightRecordingTests {
    /// name → shape, after checking that no name comes twice.
    static func byName(_ list: [(name: String, shape: [Int])]) -> [String: [Int]] {
        let map = Dictionary(list.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
        #expect(map.count == list.count, "a name is listed twice")
        return map
    }

    static func byName(_ list: [ExpectedWeight]) -> [String: [Int]] { byName(list.map { ($0.name, $0.shape) }) }

    static let clean = CheckpointCheck(missing: [], unexpected: [], shapeMismatches: [])

    @Test(arguments: ["dev_tiny", "dev_batch2_odd", "schnell_tiny_bf16"])
    func transformerMatchesTheHandList(_ fixture: String) throws {
        let config = try TransformerCheckpoint.open(fixturePath("transformer", fixture, "diffusers")).config
        // The tiny BFL files' RoPE axes cannot be inferred: they get the diffusers folder's config.
        for path in [fixturePath("transformer", fixture, "diffusers"),
                     fixturePath("transformer", fixture, "flux1.safetensors")] {
            let checkpoint = try TransformerCheckpoint.open(path, config: config)
            #expect(Self.byName(checkpoint.expected) == Self.byName(HandKeptWeightLists.transformer(checkpoint.config)))
            #expect(checkpoint.check() == Self.clean, "\(path)")
        }
    }

    @Test func fullSizeTransformersMatchTheHandList() throws {
        for config in [FluxConfig.dev, .schnell] {
            let recorded = try FluxTransformer.expectedWeights(for: config)
            #expect(Self.byName(recorded) == Self.byName(HandKeptWeightLists.transformer(config)))
        }
        // dev: 19 double blocks × 2 streams × 12 tensors, 38 single blocks × 8, img_in + txt_in 4, three embedders 12,
        // final layer 4.
        #expect(try FluxTransformer.expectedWeights(for: .dev).count == 19 * 24 + 38 * 8 + 4 + 12 + 4)
    }

    @Test(arguments: ["flux_l16", "noattn_io", "quant_3level_b2"])
    func vaeMatchesTheHandList(_ fixture: String) throws {
        let checkpoint = try AutoencoderCheckpoint.open(fixturePath("vae", fixture, "diffusers"))
        for parts: AutoencoderParts in [.all, .encoder, .decoder] {
            #expect(Self.byName(checkpoint.expected(parts: parts))
                == Self.byName(HandKeptWeightLists.vae(checkpoint.config, parts: parts)))
        }
        #expect(checkpoint.check() == Self.clean)
        let ae = fixturePath("vae", fixture, "ae.safetensors")
        if FileManager.default.fileExists(atPath: ae) {
            // The LDM file stores the attention projections as 1×1 convolutions: the same numbers, no mismatch.
            // Its tiny widths hide norm_num_groups, so it gets the folder's config.
            #expect(try AutoencoderCheckpoint.open(ae, config: checkpoint.config).check() == Self.clean)
        }
    }

    @Test func fullSizeVAEMatchesTheHandList() throws {
        #expect(Self.byName(try AutoencoderKL.expectedWeights(for: .flux))
            == Self.byName(HandKeptWeightLists.vae(.flux)))
    }

    @Test(arguments: [fixturePath("text_encoders", "clip_eos_first", "model"),
                      fixturePath("text_encoders", "clip_gelu_short_bf16", "model"),
                      fixturePath("text_encoders", "clip_legacy_argmax", "model"),
                      fixturePath("pipeline", "dev_tiny")])
    func clipMatchesTheHandListAndTheStoredShapes(_ path: String) throws {
        let checkpoint = try CLIPCheckpoint.open(path)
        #expect(checkpoint.expected.map(\.name).sorted() == HandKeptWeightLists.clip(checkpoint.config).sorted())
        for weight in checkpoint.expected { #expect(checkpoint.weights.shape(weight.name) == weight.shape) }
        #expect(checkpoint.check() == Self.clean)
    }

    @Test(arguments: [fixturePath("text_encoders", "t5_gated_gelu", "model"),
                      fixturePath("text_encoders", "t5_relu_small_buckets", "model"),
                      fixturePath("pipeline", "dev_tiny")])
    func t5MatchesTheHandListAndTheStoredShapes(_ path: String) throws {
        let checkpoint = try T5Checkpoint.open(path)
        #expect(checkpoint.expected.map(\.name).sorted() == HandKeptWeightLists.t5(checkpoint.config).sorted())
        for weight in checkpoint.expected { #expect(checkpoint.weights.shape(weight.name) == weight.shape) }
        #expect(checkpoint.check().missing.isEmpty && checkpoint.check().shapeMismatches.isEmpty)
    }

    @Test func recordingRunsNoOp() throws {
        // The recorder's tensors hold no numbers: building works, computing refuses.
        let recorder = WeightRecorder()
        let weights = ModuleWeights(recording: recorder)
        let t = try weights.tensor("a.weight", shape: [4, 2])
        _ = try weights.tensor("a.weight", shape: [4, 2])
        #expect(recorder.weights == [ExpectedWeight(name: "a.weight", shape: [4, 2])])
        #expect(t.storage.byteCount == 0)
        #expect(throws: TensorError.self) { try weights.backend.add(t, t) }
        #expect(try weights.backend.slice(t, axis: 0, start: 1, count: 2).shape == [2, 2])
    }
}
