import FluxCore
import FluxModel
import Foundation

/// A `--lora-dir` for tests: copies of two fixture LoRAs of the tiny dev pipeline (`kohya`, `xlabs`), and, when
/// asked, two files the catalog must list as unusable: `broken` (not a safetensors file) and `mismatched` (a kohya
/// pair for `double_blocks.0.img_attn.qkv` whose down matrix reads 7 features where the model has 32).
enum LoRATestFiles {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let tinyPipeline = fixtures.appendingPathComponent("pipeline/dev_tiny").path

    static func fixture(_ name: String) -> String {
        fixtures.appendingPathComponent("lora/\(name).safetensors").path
    }

    /// The tiny pipeline's LoRA targets (configs only).
    static func tinyTargets() throws -> LoRATargets {
        try PipelineComponents.resolve(tinyPipeline).loraTargets()
    }

    static func directory(withUnusable: Bool = true) throws -> String {
        let dir = try temporaryDirectory()
        for name in ["kohya", "xlabs"] {
            try FileManager.default.copyItem(atPath: fixture(name), toPath: "\(dir)/\(name).safetensors")
        }
        if withUnusable {
            try Data("not a LoRA".utf8).write(to: URL(fileURLWithPath: "\(dir)/broken.safetensors"))
            let module = "lora_unet_double_blocks_0_img_attn_qkv"
            try writeSafetensors([
                "\(module).lora_down.weight": HostTensor([Float](repeating: 0.01, count: 4 * 7), shape: [4, 7]),
                "\(module).lora_up.weight": HostTensor([Float](repeating: 0.01, count: 96 * 4), shape: [96, 4]),
            ], to: "\(dir)/mismatched.safetensors")
        }
        try Data("ignored: not .safetensors".utf8).write(to: URL(fileURLWithPath: "\(dir)/README.txt"))
        return dir
    }

    static func sha256(_ path: String) throws -> String {
        var hash = SHA256()
        hash.update(try Data(contentsOf: URL(fileURLWithPath: path)))
        return hash.finalizeHex()
    }
}
