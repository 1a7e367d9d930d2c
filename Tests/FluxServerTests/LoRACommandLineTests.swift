import FluxCore
import FluxImages
import FluxModel
import Foundation
import Testing

/// Issue 14, the command line: `--lora FILE[:SCALE]` on `generate`, `eval pipeline` and `eval transformer`, and
/// `inspect` on LoRA files, run as the built `fluxserve` on the tiny dev pipeline and the LoRA fixtures
/// (`tools/reference/README.md`, "LoRA fixtures"). Every refusal is one `error:` line naming the key, exit 1, and no
/// output file.
@Suite struct LoRACommandLineTests {
    typealias Run = BackendOptionsCLITests.Run
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let devTiny = fixtures + "/pipeline/dev_tiny"
    static func lora(_ name: String) -> String { fixtures + "/lora/\(name).safetensors" }

    /// The fixture cases, each with its LoRA files and scales as its metadata lists them (`loras`).
    static let cases: [String] = {
        let folder = fixtures + "/lora/cases"
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
            .filter { $0.hasSuffix(".transformer.safetensors") }
            .map { String($0.dropLast(".transformer.safetensors".count)) }
    }()

    static func loraArguments(ofCase name: String) throws -> [String] {
        struct Entry: Decodable { let file: String; let scale: Double }
        let expected = try SafetensorsFile(path: fixtures + "/lora/cases/\(name).transformer.safetensors")
        let entries = try JSONDecoder().decode([Entry].self, from: Data((expected.metadata["loras"] ?? "").utf8))
        return entries.flatMap { ["--lora", fixtures + "/lora/" + $0.file + ":\($0.scale)"] }
    }

    /// `eval transformer` on the fixtures' transformer inputs; the error of its sample against case `name`'s.
    static func evalTransformer(_ loras: [String], expected name: String, in folder: String) throws -> (Run, Float) {
        let output = folder + "/sample-\(UUID().uuidString).safetensors"
        let run = try CommandLineTests.run(["eval", "transformer", "--model", devTiny, "--inputs",
                                            fixtures + "/lora/transformer_inputs.safetensors", "-o", output] + loras)
        guard run.status == 0 else { return (run, .infinity) }
        let sample = try SafetensorsFile(path: output).tensor("sample").floats()
        let reference = try SafetensorsFile(path: fixtures + "/lora/cases/\(name).transformer.safetensors")
            .tensor("sample").floats()
        return (run, maxRelativeError(sample, reference))
    }

    static func maxRelativeError(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count, !b.isEmpty else { return .infinity }
        let scale = b.map(abs).max() ?? 0
        return zip(a, b).map { abs($0 - $1) }.max()! / max(scale, .leastNormalMagnitude)
    }

    /// A copy of LoRA fixture `name` with its tensors renamed or replaced by `edit` (nil drops one).
    static func altered(_ name: String, to path: String,
                        _ edit: (_ key: String, _ tensor: HostTensor) -> (String, HostTensor)?) throws {
        let file = try SafetensorsFile(path: lora(name))
        var tensors: [String: HostTensor] = [:]
        for key in file.names {
            if let (newKey, tensor) = edit(key, try file.tensor(key)) { tensors[newKey] = tensor }
        }
        try writeSafetensors(tensors, metadata: file.metadata, to: path)
    }

    /// Bad LoRA files in `folder`: a module the tiny model lacks (double block 7 of 2), an in-features mismatch,
    /// a LoKr adapter, a model tensor, bytes that are not safetensors. Returns (file, what the error must say).
    static func badFiles(in folder: String) throws -> [(path: String, says: String)] {
        try altered("kohya", to: folder + "/unmatched.safetensors") { key, t in
            (key.replacingOccurrences(of: "double_blocks_1_img_attn_qkv", with: "double_blocks_7_img_attn_qkv"), t)
        }
        let narrowKey = "transformer.transformer_blocks.0.attn.to_q.lora_A.weight"
        try altered("peft_diffusers", to: folder + "/narrow.safetensors") { key, t in
            guard key == narrowKey else { return (key, t) }
            let (rank, inFeatures) = (t.shape[0], t.shape[1] - 1)  // one in-feature short
            return (key, HostTensor(Array(t.floats().prefix(rank * inFeatures)), shape: [rank, inFeatures]))
        }
        let lokr = "lora_unet_double_blocks_0_img_attn_qkv.lokr_w1"
        try writeSafetensors([lokr: HostTensor([1, 2, 3, 4], shape: [2, 2])], to: folder + "/lokr.safetensors")
        try writeSafetensors(["double_blocks.0.img_attn.qkv.weight": HostTensor([1, 2], shape: [1, 2])],
                             to: folder + "/weights.safetensors")
        try Data("not a tensor file at all".utf8).write(to: URL(fileURLWithPath: folder + "/notes.safetensors"))
        return [
            (folder + "/unmatched.safetensors", "lora_unet_double_blocks_7_img_attn_qkv.lora_down.weight"),
            (folder + "/narrow.safetensors", narrowKey),
            (folder + "/lokr.safetensors", lokr),
            (folder + "/weights.safetensors", "double_blocks.0.img_attn.qkv.weight"),
            (folder + "/notes.safetensors", "notes.safetensors"),
            (folder + "/missing.safetensors", "cannot be read"),
            (folder, "cannot be read"),
            (lora("kohya") + ":nan", "finite"),
            (lora("kohya") + ":inf", "finite"),
            (lora("kohya") + ":1e999", "finite"),
        ]
    }

    @Test func fixturesArePresent() { #expect(Self.cases.count >= 11) }

    /// Each fixture case through `--lora FILE:SCALE …` (its files and weights, negative ones and stacks included)
    /// reproduces diffusers' transformer sample; text-encoder modules are skipped with one note.
    @Test(arguments: cases) func evalTransformerMatchesDiffusers(_ name: String) throws {
        let folder = try CommandLineTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let arguments = try Self.loraArguments(ofCase: name)
        let (run, error) = try Self.evalTransformer(arguments, expected: name, in: folder)
        print("eval transformer --lora \(name): max relative error \(error)")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(error <= 1e-3)
        // A note exactly when a file of the case adapts a text encoder.
        let files = try stride(from: 1, to: arguments.count, by: 2).map { i in
            try LoRAFile.open(String(arguments[i][..<arguments[i].lastIndex(of: ":")!]))
        }
        let hasEncoderModules = files.contains { $0.components != [.transformer] }
        #expect(run.stderr.contains("note: eval transformer runs the transformer alone") == hasEncoderModules,
                "\(run.stderr)")
    }

    /// `eval pipeline --lora …` on each case's inputs reproduces diffusers' image (CLIP modules included).
    @Test(arguments: cases) func evalPipelineMatchesDiffusers(_ name: String) throws {
        let folder = try CommandLineTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let run = try CommandLineTests.run(["eval", "pipeline", "--model", Self.devTiny, "--inputs",
                                            Self.fixtures + "/lora/cases/\(name).inputs.safetensors",
                                            "-o", folder + "/image.safetensors"] + (try Self.loraArguments(ofCase: name)))
        #expect(run.status == 0, "\(run.stderr)")
        guard run.status == 0 else { return }
        let image = try SafetensorsFile(path: folder + "/image.safetensors").tensor("image")
        let reference = try SafetensorsFile(path: Self.fixtures + "/lora/cases/\(name).image.safetensors").tensor("image")
        #expect(image.shape == reference.shape)
        let error = Self.maxRelativeError(image.floats(), reference.floats())
        print("eval pipeline --lora \(name): max relative error \(error)")
        #expect(error <= 1e-3)
    }

    /// `--lora-mode swap` and `beside` (how the service switches LoRAs) give the merged path's numbers through the
    /// command line too, on a stack of two formats with a negative weight, transformer and pipeline.
    @Test(arguments: ["swap", "beside"]) func everyLoRAModeMatchesDiffusers(_ mode: String) throws {
        let folder = try CommandLineTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let name = "stack_kohya_xlabs"
        let arguments = try Self.loraArguments(ofCase: name) + ["--lora-mode", mode]
        let (run, error) = try Self.evalTransformer(arguments, expected: name, in: folder)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(error <= 1e-3, "eval transformer --lora-mode \(mode): \(error)")
        let pipeline = try CommandLineTests.run(["eval", "pipeline", "--model", Self.devTiny, "--inputs",
                                                 Self.fixtures + "/lora/cases/\(name).inputs.safetensors",
                                                 "-o", folder + "/image.safetensors"] + arguments)
        #expect(pipeline.status == 0, "\(pipeline.stderr)")
        guard pipeline.status == 0 else { return }
        let image = try SafetensorsFile(path: folder + "/image.safetensors").tensor("image")
        let reference = try SafetensorsFile(path: Self.fixtures + "/lora/cases/\(name).image.safetensors").tensor("image")
        #expect(Self.maxRelativeError(image.floats(), reference.floats()) <= 1e-3)
    }

    /// `FILE` means scale 1, `FILE:0.7` 0.7; a path holding ':' works with and without a scale.
    @Test func scalesAndPathsWithColons() throws {
        let folder = try CommandLineTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let odd = folder + "/a:b"
        try FileManager.default.createDirectory(atPath: odd, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.lora("kohya"), toPath: odd + "/kohya:v2.safetensors")
        let forms: [(argument: String, case: String)] = [
            (Self.lora("kohya"), "kohya"),
            (Self.lora("kohya") + ":1", "kohya"),
            (Self.lora("kohya") + ":0.7", "kohya_scale07"),
            (Self.lora("kohya") + ":7e-1", "kohya_scale07"),
            (odd + "/kohya:v2.safetensors", "kohya"),
            (odd + "/kohya:v2.safetensors:0.7", "kohya_scale07"),
        ]
        for form in forms {
            let (run, error) = try Self.evalTransformer(["--lora", form.argument], expected: form.case, in: folder)
            #expect(run.status == 0 && error <= 1e-3, "\(form.argument): error \(error), \(run.stderr)")
        }
        // A negative scale is taken as a value (not as an option), and stacks keep their order.
        let (run, error) = try Self.evalTransformer(
            ["--lora", Self.lora("kohya") + ":0.8", "--lora", Self.lora("xlabs") + ":-0.5"],
            expected: "stack_kohya_xlabs", in: folder)
        #expect(run.status == 0 && error <= 1e-3, "error \(error), \(run.stderr)")
    }

    /// Every bad `--lora` on `generate` is one error line naming the file and key, before anything loads.
    @Test func generateRefusesBadLoRAs() throws {
        let folder = try CommandLineTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let output = folder + "/out.png"
        for bad in try Self.badFiles(in: folder) {
            try CommandLineTests.expectOneErrorLine(
                ["generate", "a red fox", "--model", Self.devTiny, "-o", output, "--steps", "1", "--lora", bad.path],
                saying: bad.says)
            #expect(!FileManager.default.fileExists(atPath: output))
        }
        // A good LoRA before a bad one does not change that.
        try CommandLineTests.expectOneErrorLine(
            ["generate", "a red fox", "--model", Self.devTiny, "-o", output, "--lora", Self.lora("xlabs"),
             "--lora", folder + "/unmatched.safetensors"], saying: "has no linear layer")
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    /// The eval commands refuse the same way (`eval transformer` prints its `config:` line first).
    @Test func evalRefusesBadLoRAs() throws {
        let folder = try CommandLineTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bad = try Self.badFiles(in: folder)
        let output = folder + "/out.safetensors"
        let commands: [[String]] = [
            ["eval", "transformer", "--inputs", Self.fixtures + "/lora/transformer_inputs.safetensors"],
            ["eval", "pipeline", "--inputs", Self.fixtures + "/lora/cases/kohya.inputs.safetensors"],
        ]
        for command in commands {
            for file in bad.prefix(3) {
                let run = try CommandLineTests.run(command + ["--model", Self.devTiny, "-o", output, "--lora", file.path])
                let errors = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("config: ") }
                #expect(run.status == 1, "\(command[1]) \(file.path): \(run.stderr)")
                #expect(errors.count == 1 && errors[0].hasPrefix("error: ") && errors[0].contains(file.says),
                        "\(command[1]) \(file.path): \(run.stderr)")
                #expect(!FileManager.default.fileExists(atPath: output))
            }
        }
    }

    /// `generate --lora kohya:0.7` changes the picture (same seed) and records the LoRA's name, hash and scale, in
    /// our `loras` key and in A1111's `parameters` (`<lora:name:scale>`, `Lora hashes`).
    @Test func generateRecordsTheLoRA() throws {
        let folder = try CommandLineTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let common = ["a red fox in snow", "--model", Self.devTiny, "--seed", "5", "--steps", "2",
                      "--width", "48", "--height", "32"]
        let plain = try CommandLineTests.run(["generate"] + common + ["-o", folder + "/plain.png"])
        #expect(plain.status == 0, "\(plain.stderr)")
        let run = try CommandLineTests.run(["generate"] + common + ["-o", folder + "/lora.png",
                                                                   "--lora", Self.lora("kohya") + ":0.7"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("with LoRA kohya (0.7)"), "\(run.stderr)")

        let hash = try EditCommandLineTests.sha256(of: Self.lora("kohya"))
        let text = try EditCommandLineTests.text(ofPNG: folder + "/lora.png")
        let records = try JSONDecoder().decode([ImageMetadata.LoRARecord].self,
                                               from: Data(try #require(text["loras"]).utf8))
        #expect(records == [ImageMetadata.LoRARecord(name: "kohya", sha256: hash, scale: 0.7)])
        let parameters = try #require(text["parameters"])
        #expect(parameters.hasPrefix("a red fox in snow <lora:kohya:0.7>\n"), "\(parameters)")
        #expect(parameters.contains("Lora hashes: \"kohya: \(hash.prefix(12))\""), "\(parameters)")
        let plainText = try EditCommandLineTests.text(ofPNG: folder + "/plain.png")
        #expect(plainText["loras"] == nil && plainText["parameters"]?.contains("Lora") == false)

        let a = try ImageDecoder.decode(path: folder + "/plain.png"), b = try ImageDecoder.decode(path: folder + "/lora.png")
        #expect(a.width == b.width && a.height == b.height && a.pixels.count == b.pixels.count)
        let meanChange = zip(a.pixels, b.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) }
            / Double(max(a.pixels.count, 1))
        print("generate --lora kohya:0.7: mean change \(meanChange) levels of 255")
        #expect(meanChange > 1)
    }

    /// `inspect` on a LoRA: format, hash, module counts, ranks and alphas per component as `LoRAFile` reads them,
    /// and block groups that name every module exactly once.
    @Test(arguments: ["kohya", "xlabs", "peft_diffusers_alpha"]) func inspectDescribesALoRA(_ name: String) throws {
        let file = try LoRAFile.open(Self.lora(name))
        let text = try CommandLineTests.run(["inspect", Self.lora(name)])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("LoRA: \(file.format)") && text.stdout.contains("sha256 \(file.sha256)"),
                "\(text.stdout)")
        for component in file.components {
            let count = file.modules.filter { $0.component == component }.count
            #expect(text.stdout.contains("\(component.rawValue): \(count) modules"), "\(text.stdout)")
        }

        let run = try CommandLineTests.run(["inspect", Self.lora(name), "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: Data(run.stdout.utf8))
        #expect(report.format == file.format && report.sha256 == file.sha256)
        #expect(report.components.map(\.name) == file.components.map(\.rawValue))
        for (component, entry) in zip(file.components, report.components) {
            let modules = file.modules.filter { $0.component == component }
            #expect(entry.modules == modules.count)
            #expect(entry.ranks == Set(modules.map(\.rank)).sorted())
            #expect(entry.alphas == Set(modules.compactMap(\.alpha)).sorted())
            // Every (block, index, module) names one key of the file, and together they name them all.
            var named: [String] = []
            for group in entry.blocks {
                if group.indices.isEmpty { named.append(group.block); continue }
                for i in group.indices {
                    for part in group.modules {
                        let spelled = [".", "_"].map { group.block + $0 + "\(i)" + $0 + part }
                        named.append(spelled.first { s in modules.contains { $0.key == s } } ?? spelled[0])
                    }
                }
            }
            #expect(named.sorted() == modules.map(\.key).sorted(), "\(name) \(component)")
        }
    }

    /// `inspect --json` of a LoRA, the parts these tests read.
    struct Report: Decodable {
        struct Component: Decodable {
            struct Group: Decodable { let block: String; let indices: [Int]; let modules: [String] }
            let name: String, modules: Int, ranks: [Int], alphas: [Double], blocks: [Group]
        }
        struct Fit: Decodable { let model: String; let fits: Bool; let problem: String? }
        let format: String, sha256: String, components: [Component], fit: Fit?
    }

    /// `inspect LORA --model M`: "fits M", or the key that does not fit on one error line and exit 1.
    @Test func inspectChecksTheFit() throws {
        let folder = try CommandLineTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bad = try Self.badFiles(in: folder)
        for name in ["kohya", "bfl_peft"] {
            let run = try CommandLineTests.run(["inspect", Self.lora(name), "--model", Self.devTiny])
            #expect(run.status == 0 && run.stdout.contains("fits \(Self.devTiny)"), "\(run.stdout)\(run.stderr)")
        }
        for file in bad.prefix(2) {
            let run = try CommandLineTests.run(["inspect", file.path, "--model", Self.devTiny])
            #expect(run.status == 1 && run.stdout.contains("does not fit"), "\(run.stdout)")
            let lines = run.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("error: ") && lines[0].contains(file.says), "\(run.stderr)")
            let json = try CommandLineTests.run(["inspect", file.path, "--model", Self.devTiny, "--json"])
            let fit = try JSONDecoder().decode(Report.self, from: Data(json.stdout.utf8)).fit
            #expect(json.status == 1 && fit?.fits == false && fit?.problem?.contains(file.says) == true,
                    "\(json.stdout)")
        }
        // A LoKr file is named as such; a checkpoint is still inspected as one, and --model is for LoRAs.
        try CommandLineTests.expectOneErrorLine(["inspect", bad[2].path], saying: "LoKr")
        try CommandLineTests.expectOneErrorLine(["inspect", Self.devTiny, "--model", Self.devTiny],
                                                saying: "--model applies to LoRA files")
        let model = try CommandLineTests.run(["inspect", Self.devTiny + "/transformer"])
        #expect(model.status == 0 && model.stdout.contains("loadable: yes"), "\(model.stdout)\(model.stderr)")
    }
}
