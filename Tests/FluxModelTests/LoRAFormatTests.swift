import FluxCore
@testable import FluxModel
import Foundation
import Testing

/// LoRA files that must be refused with one message naming the key, and spellings that must read as the same
/// numbers. Bad files are made from the fixtures with one thing changed.
@Suite struct LoRAFormatTests {
    static let targets: LoRATargets = {
        (try? PipelineComponents.resolve(fixturePath("pipeline", "dev_tiny")).loraTargets())!
    }()

    /// The tensors of fixture `name`, to change one thing in.
    static func tensors(_ name: String) throws -> (tensors: [String: HostTensor], metadata: [String: String]) {
        let file = try SafetensorsFile(path: fixturePath("lora", "\(name).safetensors"))
        var result: [String: HostTensor] = [:]
        for key in file.names { result[key] = HostTensor(try file.tensor(key).floats(), shape: file.info(key)!.shape) }
        return (result, file.metadata)
    }

    static func write(_ tensors: [String: HostTensor], metadata: [String: String] = [:]) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("lora-\(UUID().uuidString).safetensors").path
        try writeSafetensors(tensors, metadata: metadata, to: path)
        return path
    }

    /// The error reading `tensors` and matching them to dev_tiny gives.
    static func refusal(_ tensors: [String: HostTensor], metadata: [String: String] = [:]) throws -> LoRAError? {
        let path = try write(tensors, metadata: metadata)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try LoRAStack([.init(file: try LoRAFile.open(path), scale: 1)]).deltas(for: targets)
            return nil
        } catch let error as LoRAError {
            return error
        }
    }

    @Test func moduleTheModelLacksIsNamed() throws {
        var (t, _) = try Self.tensors("kohya")
        t["lora_unet_double_blocks_7_img_attn_qkv.lora_down.weight"] = t["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"]
        t["lora_unet_double_blocks_7_img_attn_qkv.lora_up.weight"] = t["lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"]
        let error = try #require(try Self.refusal(t))
        guard case let .noSuchModule(_, key, module, _) = error else { Issue.record("\(error)"); return }
        #expect(key == "lora_unet_double_blocks_7_img_attn_qkv.lora_down.weight")
        #expect(module == "double_blocks_7_img_attn_qkv")
        #expect(error.description.contains("2 double + 2 single blocks"))
    }

    @Test func normScalesAreNotLinearLayers() throws {
        var (t, _) = try Self.tensors("bfl_peft")
        t["diffusion_model.double_blocks.0.img_attn.norm.query_norm.lora_A.weight"] = HostTensor([Float](repeating: 0.1, count: 8), shape: [1, 8])
        t["diffusion_model.double_blocks.0.img_attn.norm.query_norm.lora_B.weight"] = HostTensor([Float](repeating: 0.1, count: 8), shape: [8, 1])
        let error = try #require(try Self.refusal(t))
        #expect(error.description.contains("diffusion_model.double_blocks.0.img_attn.norm.query_norm.lora_A.weight"))
    }

    @Test func wrongInFeaturesIsNamed() throws {
        var (t, _) = try Self.tensors("peft_diffusers")
        let key = "transformer.transformer_blocks.0.attn.to_q.lora_A.weight"
        let a = try #require(t[key])
        t[key] = HostTensor([Float](repeating: 0, count: a.shape[0] * 40), shape: [a.shape[0], 40])
        let error = try #require(try Self.refusal(t))
        guard case let .shape(_, errorKey, shape, expected) = error else { Issue.record("\(error)"); return }
        #expect(errorKey == key && shape == [a.shape[0], 40])
        #expect(expected.contains("double_blocks.0.img_attn.qkv.weight"))
    }

    @Test func wrongRowsOfASplitModuleAreNamed() throws {
        var (t, _) = try Self.tensors("peft_diffusers")
        let key = "transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight"
        let b = try #require(t[key])
        t[key] = HostTensor([Float](repeating: 0, count: 32 * b.shape[1]), shape: [32, b.shape[1]])
        let error = try #require(try Self.refusal(t))
        #expect(error.description.contains(key))
        #expect(error.description.contains("rows 96..<224 of single_blocks.0.linear1.weight"))
    }

    @Test func unsupportedKindsAreNamed() throws {
        for (key, kind) in [("lora_unet_double_blocks_0_img_attn_qkv.lokr_w1", "LoKr"),
                            ("lora_unet_double_blocks_0_img_attn_qkv.hada_w1_a", "LoHa"),
                            ("transformer.transformer_blocks.0.attn.to_q.lora_magnitude_vector", "DoRA"),
                            ("diffusion_model.double_blocks.0.img_attn.qkv.diff", "full-difference")] {
            var (t, _) = try Self.tensors("kohya")
            t[key] = HostTensor([Float](repeating: 1, count: 4), shape: [2, 2])
            let error = try #require(try Self.refusal(t))
            #expect(error == .unsupportedKind(file: error.file, key: key, kind: kind))
        }
    }

    @Test func halfPairsAndStrayKeysAreNamed() throws {
        var (t, _) = try Self.tensors("kohya")
        t.removeValue(forKey: "lora_unet_single_blocks_1_linear2.lora_up.weight")
        #expect(try Self.refusal(t)?.description.contains("lora_unet_single_blocks_1_linear2.lora_down.weight has no up matrix") == true)
        (t, _) = try Self.tensors("kohya")
        t["lora_unet_double_blocks_0_img_attn_qkv.scale"] = HostTensor([1], shape: [1])
        let error = try #require(try Self.refusal(t))
        guard case .unrecognisedKey(_, "lora_unet_double_blocks_0_img_attn_qkv.scale", _) = error else {
            Issue.record("\(error)"); return
        }
        let empty = try #require(try Self.refusal([:]))
        guard case .empty = empty else { Issue.record("\(empty)"); return }
    }

    @Test func metadataAndAlphaTensorsTogetherAreRefused() throws {
        var (t, metadata) = try Self.tensors("peft_diffusers_meta")
        #expect(try Self.refusal(t, metadata: metadata) == nil)
        t["transformer.transformer_blocks.0.attn.to_out.0.alpha"] = HostTensor([2], shape: [])
        #expect(try Self.refusal(t, metadata: metadata)?.description.contains("both lora_adapter_metadata") == true)
        (t, metadata) = try Self.tensors("peft_diffusers_meta")
        metadata["lora_adapter_metadata"] = metadata["lora_adapter_metadata"]!
            .replacingOccurrences(of: "\"transformer.use_dora\": false", with: "\"transformer.use_dora\": true")
        #expect(try Self.refusal(t, metadata: metadata)?.description.contains("DoRA") == true)
    }

    /// ai-toolkit's kohya-style spelling of diffusers names (`lora_transformer_…lora_down`), without alpha, is the
    /// same update as the PEFT file it renames.
    @Test func underscoredDiffusersNamesReadAsPEFT() throws {
        let (t, _) = try Self.tensors("peft_diffusers")
        var renamed: [String: HostTensor] = [:]
        for (key, value) in t where key.hasPrefix("transformer.") {
            let module = key.dropFirst("transformer.".count)
                .replacingOccurrences(of: ".lora_A.weight", with: "").replacingOccurrences(of: ".lora_B.weight", with: "")
            let part = key.hasSuffix(".lora_A.weight") ? "lora_down" : "lora_up"
            renamed["lora_transformer_" + module.replacingOccurrences(of: ".", with: "_") + ".\(part).weight"] = value
        }
        let path = try Self.write(renamed)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let kohya = try LoRAFile.open(path)
        #expect(kohya.format == "kohya")
        let peft = try LoRAFile.open(fixturePath("lora", "peft_diffusers.safetensors")).restricted(to: [.transformer])
        try expectSameDeltas(kohya, peft)
    }

    /// diffusers' `norm_out.linear` keeps (scale, shift), BFL's `final_layer.adaLN_modulation.1` (shift, scale): a
    /// LoRA on either must change the same rows.
    @Test func finalNormHalvesAreSwapped() throws {
        let rank = 2, inFeatures = 32, out = 64
        var rng = SplitMix64(seed: 7)
        let a = (0..<rank * inFeatures).map { _ in Float(rng.next() % 1000) / 1000 - 0.5 }
        let b = (0..<out * rank).map { _ in Float(rng.next() % 1000) / 1000 - 0.5 }
        let swapped = Array(b[out / 2 * rank..<out * rank] + b[0..<out / 2 * rank])
        let diffusers = try Self.write([
            "transformer.norm_out.linear.lora_A.weight": HostTensor(a, shape: [rank, inFeatures]),
            "transformer.norm_out.linear.lora_B.weight": HostTensor(b, shape: [out, rank])])
        let bfl = try Self.write([
            "diffusion_model.final_layer.adaLN_modulation.1.lora_A.weight": HostTensor(a, shape: [rank, inFeatures]),
            "diffusion_model.final_layer.adaLN_modulation.1.lora_B.weight": HostTensor(swapped, shape: [out, rank])])
        defer { for p in [diffusers, bfl] { try? FileManager.default.removeItem(atPath: p) } }
        try expectSameDeltas(try LoRAFile.open(diffusers), try LoRAFile.open(bfl))
    }

    func expectSameDeltas(_ x: LoRAFile, _ y: LoRAFile) throws {
        let dx = try LoRAStack([.init(file: x, scale: 1)]).deltas(for: Self.targets)[.transformer] ?? [:]
        let dy = try LoRAStack([.init(file: y, scale: 1)]).deltas(for: Self.targets)[.transformer] ?? [:]
        #expect(!dx.isEmpty && Set(dx.keys) == Set(dy.keys))
        for (name, delta) in dx {
            let other = try #require(dy[name])
            #expect(delta.down.floats() == other.down.floats(), "\(name) down")
            #expect(delta.up.floats() == other.up.floats(), "\(name) up")
        }
    }
}

extension LoRAError {
    var file: String {
        switch self {
        case let .unrecognisedKey(file, _, _), let .unsupportedKind(file, _, _), let .noSuchModule(file, _, _, _),
             let .shape(file, _, _, _), let .incomplete(file, _, _), let .invalidMetadata(file, _), let .empty(file):
            file
        case let .invalidScale(argument): argument
        }
    }
}
