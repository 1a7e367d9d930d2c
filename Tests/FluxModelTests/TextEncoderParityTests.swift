import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// CLIPTextModel and T5EncoderModel against transformers 5.24 on tiny random configs
/// (`tools/reference/make_text_encoder_fixtures.py`): `last_hidden_state` and CLIP's `pooler_output` within 1e-4 (f32),
/// plus the T5 bucket function against transformers' tables and the errors for bad checkpoints and bad ids.
@Suite struct TextEncoderParityTests {
    static let root = fixturePath("text_encoders")

    static func cases(_ kind: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
            .filter { $0.hasPrefix(kind + "_") && FileManager.default.fileExists(atPath: "\(root)/\($0)/inputs.safetensors") }
    }

    static let clipCases = cases("clip")
    static let t5Cases = cases("t5")

    @Test func fixturesArePresent() {
        #expect(Self.clipCases.count >= 3, "expected at least three CLIP fixtures")
        #expect(Self.t5Cases.count >= 2, "expected at least two T5 fixtures")
    }

    static func ids(_ name: String) throws -> TokenIds {
        try TokenIds(try SafetensorsFile(path: "\(root)/\(name)/inputs.safetensors").tensor("input_ids"))
    }

    static func expected(_ name: String, _ tensor: String) throws -> HostTensor {
        try SafetensorsFile(path: "\(root)/\(name)/outputs.safetensors").tensor(tensor)
    }

    static func error(_ actual: Tensor, _ reference: HostTensor, on backend: any Backend) throws -> Float {
        #expect(actual.shape == reference.shape)
        return maxRelativeError(try backend.floats(actual), reference.floats())
    }

    @Test(arguments: clipCases) func clipParity(_ name: String) throws {
        let checkpoint = try CLIPCheckpoint.open("\(Self.root)/\(name)/model")
        #expect(checkpoint.missingWeights().isEmpty)
        #expect(checkpoint.unexpectedTensors().isEmpty)
        let backend = CPUBackend()
        let out = try checkpoint.load(on: backend)(try Self.ids(name))
        let hidden = try Self.error(out.lastHiddenState, try Self.expected(name, "last_hidden_state"), on: backend)
        let pooled = try Self.error(out.poolerOutput, try Self.expected(name, "pooler_output"), on: backend)
        print("clip parity \(name) (prefix '\(checkpoint.prefix)'): last_hidden_state \(hidden), pooler_output \(pooled)")
        #expect(hidden <= 1e-4)
        #expect(pooled <= 1e-4)
    }

    @Test(arguments: t5Cases) func t5Parity(_ name: String) throws {
        let checkpoint = try T5Checkpoint.open("\(Self.root)/\(name)/model")
        #expect(checkpoint.missingWeights().isEmpty)
        #expect(checkpoint.unexpectedTensors().allSatisfy { $0 == "encoder.embed_tokens.weight" })
        let backend = CPUBackend()
        let out = try checkpoint.load(on: backend)(try Self.ids(name))
        let hidden = try Self.error(out, try Self.expected(name, "last_hidden_state"), on: backend)
        print("t5 parity \(name): last_hidden_state \(hidden)")
        #expect(hidden <= 1e-4)
    }

    /// The legacy CLIP case pools where transformers does even when the largest id is not the end token.
    @Test func legacyPoolingTakesTheFirstLargestId() throws {
        let model = try CLIPCheckpoint.open("\(Self.root)/clip_legacy_argmax/model").load(on: CPUBackend())
        let ids = try Self.ids("clip_legacy_argmax")
        #expect(model.config.eosTokenId == 2)
        #expect(model.pooledPosition(ids.row(0)) == 4)
        #expect(model.pooledPosition(ids.row(1)) == 7)
    }

    /// `T5RelativePosition.bucket` equals transformers' `_relative_position_bucket` for relative positions −300…300.
    @Test func t5BucketsMatchTransformers() throws {
        let file = try SafetensorsFile(path: "\(Self.root)/bucket_tables.safetensors")
        let relative = try file.tensor("relative_position").floats().map { Int($0) }
        let tables = file.names.filter { $0.hasPrefix("buckets_") }
        #expect(tables.count >= 6)
        for table in tables {
            let parts = table.split(separator: "_")  // buckets_N_max_distance_M
            let (buckets, distance) = (Int(parts[1]) ?? 0, Int(parts[4]) ?? 0)
            let expected = try file.tensor(table).floats().map { Int($0) }
            let ours = relative.map { T5RelativePosition.bucket($0, numBuckets: buckets, maxDistance: distance) }
            #expect(ours == expected, "\(table)")
        }
    }

    // MARK: Layouts

    /// A diffusers pipeline folder (model_index.json) gives each encoder its own subfolder.
    @Test func pipelineFolder() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("{}".utf8).write(to: folder.appendingPathComponent("model_index.json"))
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("text_encoder").path,
                                  withDestinationPath: "\(Self.root)/clip_eos_first/model")
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("text_encoder_2").path,
                                  withDestinationPath: "\(Self.root)/t5_gated_gelu/model")
        let clip = try CLIPCheckpoint.open(folder.path)
        let t5 = try T5Checkpoint.open(folder.path)
        #expect(clip.path.hasSuffix("text_encoder"))
        #expect(t5.path.hasSuffix("text_encoder_2"))
        #expect(clip.config == (try CLIPConfig.load(contentsOf: "\(Self.root)/clip_eos_first/model/config.json")))
        #expect(t5.config.dModel == 32)
    }

    /// Files that store the T5 embedding only as `encoder.embed_tokens.weight` (tied to `shared` in transformers).
    @Test func t5EmbeddingUnderEncoderName() throws {
        let name = "t5_relu_small_buckets"
        let folder = try Self.alteredCopy(of: name, dropping: "shared.weight")
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = try T5Checkpoint.open(folder.path)
        #expect(checkpoint.missingWeights().isEmpty)
        #expect(checkpoint.unexpectedTensors().isEmpty)
        let backend = CPUBackend()
        let out = try checkpoint.load(on: backend)(try Self.ids(name))
        #expect(try Self.error(out, try Self.expected(name, "last_hidden_state"), on: backend) <= 1e-4)
    }

    @Test func t5FolderIsNotAClipFolder() throws {
        #expect {
            try CLIPCheckpoint.open("\(Self.root)/t5_gated_gelu/model")
        } throws: { error in
            guard case let ModelError.invalidConfig(_, reason) = error else { return false }
            return reason.contains("model_type t5")
        }
    }

    // MARK: Errors

    /// A copy of a fixture's model folder with one tensor dropped, or a config edited.
    static func alteredCopy(of name: String, dropping dropped: String? = nil,
                            config edit: ((inout [String: Any]) -> Void)? = nil) throws -> URL {
        let folder = try temporaryFolder()
        let source = URL(fileURLWithPath: "\(root)/\(name)/model")
        var config = try JSONSerialization.jsonObject(
            with: Data(contentsOf: source.appendingPathComponent("config.json"))) as? [String: Any] ?? [:]
        edit?(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
        let checkpoint = try SafetensorsCheckpoint(path: source.path)
        var tensors: [String: HostTensor] = [:]
        for tensor in checkpoint.names where tensor != dropped { tensors[tensor] = try checkpoint.tensor(tensor) }
        try writeSafetensors(tensors, to: folder.appendingPathComponent("model.safetensors").path)
        return folder
    }

    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fluxserve-te-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func missingWeightIsNamed() throws {
        let folder = try Self.alteredCopy(of: "t5_gated_gelu",
                                          dropping: "encoder.block.1.layer.1.DenseReluDense.wi_1.weight")
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = try T5Checkpoint.open(folder.path)
        #expect(checkpoint.missingWeights() == ["encoder.block.1.layer.1.DenseReluDense.wi_1.weight"])
        #expect(throws: ModelError.missingWeight(name: "encoder.block.1.layer.1.DenseReluDense.wi_1.weight",
                                                 source: folder.path)) {
            try checkpoint.load(on: CPUBackend())
        }
    }

    @Test func wrongShapeIsNamed() throws {
        let folder = try Self.alteredCopy(of: "clip_eos_first") { $0["intermediate_size"] = 65 }
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: ModelError.weightShape(name: "encoder.layers.0.mlp.fc1.weight", shape: [64, 32],
                                               expected: [65, 32], source: folder.path)) {
            try CLIPCheckpoint.open(folder.path).load(on: CPUBackend())
        }
    }

    @Test func gatedConfigOnPlainWeightsIsNamed() throws {
        let folder = try Self.alteredCopy(of: "t5_relu_small_buckets") { $0["feed_forward_proj"] = "gated-gelu" }
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: ModelError.missingWeight(name: "encoder.block.0.layer.1.DenseReluDense.wi_0.weight",
                                                 source: folder.path)) {
            try T5Checkpoint.open(folder.path).load(on: CPUBackend())
        }
    }

    @Test func unsupportedConfigsAreRefused() throws {
        for (key, value, words) in [("hidden_act", "tanh" as Any, "hidden_act tanh"),
                                    ("num_attention_heads", 3 as Any, "not a multiple")] {
            let folder = try Self.alteredCopy(of: "clip_eos_first") { $0[key] = value }
            defer { try? FileManager.default.removeItem(at: folder) }
            #expect {
                try CLIPCheckpoint.open(folder.path)
            } throws: { error in
                guard case let ModelError.invalidConfig(_, reason) = error else { return false }
                return reason.contains(words)
            }
        }
        let folder = try Self.alteredCopy(of: "t5_gated_gelu") { $0["relative_attention_num_buckets"] = 2 }
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: ModelError.self) { try T5Checkpoint.open(folder.path) }
    }

    @Test func idOutsideVocabularyIsNamed() throws {
        let t5 = try T5Checkpoint.open("\(Self.root)/t5_gated_gelu/model").load(on: CPUBackend())
        #expect(throws: TokenIdError.outsideVocabulary(name: "input_ids", id: 500, row: 1, position: 2,
                                                       vocabularySize: 500)) {
            try t5(try TokenIds(rows: [[3, 4, 1, 0], [5, 6, 500, 1]]))
        }
        let clip = try CLIPCheckpoint.open("\(Self.root)/clip_eos_first/model").load(on: CPUBackend())
        #expect(throws: TokenIdError.self) { try clip(try TokenIds(rows: [[998, 12_345, 999]])) }
    }

    @Test func clipSequenceLongerThanPositionsIsRefused() throws {
        let clip = try CLIPCheckpoint.open("\(Self.root)/clip_legacy_argmax/model").load(on: CPUBackend())
        let row = [Int32](repeating: 5, count: 17)
        #expect(throws: ModelError.inputShape(name: "input_ids", shape: [1, 17],
                                              expected: "(B, L ≤ max_position_embeddings 16)")) {
            try clip(try TokenIds(rows: [row]))
        }
    }

    @Test func badIdTensorsAreRefused() throws {
        let negative = HostTensor([1, -2, 3], shape: [1, 3])
        #expect(throws: TokenIdError.self) { try TokenIds(negative) }
        let fractional = HostTensor([1, 2.5], shape: [1, 2])
        #expect(throws: TokenIdError.self) { try TokenIds(fractional) }
        let huge: [Int64] = [1, 1 << 40]
        let wide = huge.withUnsafeBytes { HostTensor(copying: $0, shape: [1, 2], dtype: .i64) }
        #expect(throws: TokenIdError.self) { try TokenIds(wide) }
        let cube = HostTensor([1, 2, 3, 4], shape: [1, 2, 2])
        #expect(throws: ModelError.self) { try TokenIds(cube) }
        #expect(throws: ModelError.self) { try TokenIds(rows: [[1, 2], [3]]) }
        let whole = HostTensor([7, 8], shape: [2])
        #expect(try TokenIds(whole) == TokenIds(rows: [[7, 8]]))
    }
}
