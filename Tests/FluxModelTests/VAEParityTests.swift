import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// `AutoencoderKL` against diffusers 0.42.1 on tiny random configs (`tools/reference/make_vae_fixtures.py`): decode
/// and encode from a diffusers folder and from an LDM/BFL `ae.safetensors` holding the same weights must give
/// diffusers' outputs within 1e-4 (f32); plus the layouts, config inference and errors.
@Suite struct VAEParityTests {
    static let cases: [String] = {
        let root = fixturePath("vae")
        return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: "\(root)/\($0)/decode_inputs.safetensors") }
    }()

    static let ldmCases = cases.filter { FileManager.default.fileExists(atPath: fixturePath("vae", $0, "ae.safetensors")) }

    @Test func fixturesArePresent() {
        #expect(Self.cases.count >= 3, "expected at least three VAE fixtures")
        #expect(Self.ldmCases.count >= 1, "expected at least one fixture with an LDM/BFL ae.safetensors")
    }

    @Test(arguments: cases) func diffusersLayout(_ name: String) throws {
        let checkpoint = try AutoencoderCheckpoint.open(fixturePath("vae", name, "diffusers"))
        #expect(checkpoint.layout == .diffusersModel)
        #expect(checkpoint.missingWeights().isEmpty)
        #expect(checkpoint.unexpectedTensors().isEmpty)
        let (decode, encode) = try run(checkpoint, name)
        print("vae parity \(name) diffusers layout: decode max relative error \(decode), encode \(encode)")
        #expect(decode <= 1e-4)
        #expect(encode <= 1e-4)
    }

    @Test(arguments: ldmCases) func ldmSingleFile(_ name: String) throws {
        let config = try AutoencoderConfig.load(contentsOf: fixturePath("vae", name, "diffusers", "config.json"))
        let checkpoint = try AutoencoderCheckpoint.open(fixturePath("vae", name, "ae.safetensors"), config: config)
        #expect(checkpoint.layout == .bflSingleFile)
        #expect(checkpoint.missingWeights().isEmpty)
        #expect(checkpoint.unexpectedTensors().isEmpty)
        let (decode, encode) = try run(checkpoint, name)
        print("vae parity \(name) LDM/BFL layout: decode max relative error \(decode), encode \(encode)")
        #expect(decode <= 1e-4)
        #expect(encode <= 1e-4)
    }

    /// The fixtures' widths are not multiples of 32, so their group count cannot be inferred: the error must say so.
    @Test(arguments: ldmCases) func ldmFileWithoutConfigAsksForOne(_ name: String) throws {
        let path = fixturePath("vae", name, "ae.safetensors")
        #expect {
            try AutoencoderCheckpoint.open(path)
        } throws: { error in
            (error as? ModelError)?.description.contains("norm_num_groups") == true
        }
    }

    /// Runs decode and encode of the fixture through `checkpoint` on the CPU; errors against diffusers.
    func run(_ checkpoint: AutoencoderCheckpoint, _ name: String) throws -> (decode: Float, encode: Float) {
        let backend = CPUBackend()
        let model = try checkpoint.load(on: backend)
        func tensor(_ file: String, _ key: String) throws -> HostTensor {
            try SafetensorsFile(path: fixturePath("vae", name, file)).tensor(key)
        }
        let sample = try model.decode(try backend.upload(try tensor("decode_inputs.safetensors", "latents")))
        let expectedSample = try tensor("decode_outputs.safetensors", "sample")
        #expect(sample.shape == expectedSample.shape)
        let mean = try model.encode(try backend.upload(try tensor("encode_inputs.safetensors", "sample")))
        let expectedMean = try tensor("encode_outputs.safetensors", "latent_mean")
        #expect(mean.shape == expectedMean.shape)
        return (maxRelativeError(try backend.floats(sample), expectedSample.floats()),
                maxRelativeError(try backend.floats(mean), expectedMean.floats()))
    }

    // MARK: Layouts and config inference on random weights

    /// Widths that are multiples of 32, so a single file's architecture can be read off its shapes completely.
    static let inferableConfig: AutoencoderConfig = {
        var c = AutoencoderConfig()
        c.blockOutChannels = [32, 64]
        c.downBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D"]
        c.upBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D"]
        c.layersPerBlock = 1
        c.latentChannels = 4
        c.useQuantConv = true
        c.usePostQuantConv = false
        return c
    }()

    /// Seeded small random weights for every diffusers name of `config`, stored under `name(diffusersName)`; LDM
    /// attention projections as 1×1 convolutions when `pointwiseAttention`.
    static func weights(_ config: AutoencoderConfig, pointwiseAttention: Bool = false,
                        name: (String) -> String = { $0 }) -> [String: HostTensor] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var out: [String: HostTensor] = [:]
        for (key, shape) in VAEKeyMap.referenceShapes(for: config) {
            let values = (0..<shape.reduce(1, *)).map { _ -> Float in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 10_000
            }
            let attention = key.contains(".attentions.0.to_") && key.hasSuffix(".weight")
            out[name(key)] = HostTensor(values, shape: pointwiseAttention && attention ? shape + [1, 1] : shape)
        }
        return out
    }

    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fluxserve-vae-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The same random weights under LDM names with a Stable Diffusion prefix and under diffusers names: the LDM
    /// file's config is inferred exactly, and both decode and encode to the same numbers.
    @Test func ldmFileWithPrefixMatchesDiffusersNames() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = Self.inferableConfig
        let ldmPath = folder.appendingPathComponent("sd.safetensors").path
        var ldm = Self.weights(config, pointwiseAttention: true) {
            "first_stage_model." + VAEKeyMap.ldmName($0, levels: config.levels)
        }
        ldm["model.diffusion_model.input_blocks.0.0.weight"] = HostTensor([1], shape: [1])  // the rest of an SD file
        try writeSafetensors(ldm, to: ldmPath)
        let diffusersPath = folder.appendingPathComponent("diffusion_pytorch_model.safetensors").path
        try writeSafetensors(Self.weights(config), to: diffusersPath)

        let fromLDM = try AutoencoderCheckpoint.open(ldmPath)
        #expect(fromLDM.layout == .bflSingleFile)
        #expect(fromLDM.config == config)
        #expect(fromLDM.missingWeights().isEmpty)
        #expect(fromLDM.unexpectedTensors().isEmpty)
        #expect(ldm.keys.contains("first_stage_model.decoder.up.1.upsample.conv.weight"))
        #expect(ldm.keys.contains("first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"))
        #expect(ldm.keys.contains("first_stage_model.encoder.mid.attn_1.proj_out.weight"))
        // No config.json beside it: the diffusers file's config is inferred too.
        let fromDiffusers = try AutoencoderCheckpoint.open(diffusersPath)
        #expect(fromDiffusers.layout == .diffusersModel)
        #expect(fromDiffusers.config == config)

        let backend = CPUBackend()
        let latents = try backend.tensor((0..<(2 * 4 * 3 * 5)).map { Float($0 % 7) / 3 - 1 }, shape: [2, 4, 3, 5])
        let image = try backend.tensor((0..<(1 * 3 * 10 * 6)).map { Float($0 % 11) / 5 - 1 }, shape: [1, 3, 10, 6])
        let a = try fromLDM.load(on: backend), b = try fromDiffusers.load(on: backend)
        let decoded = try a.decode(latents)
        #expect(decoded.shape == [2, 3, 6, 10])
        #expect(try backend.floats(decoded) == backend.floats(try b.decode(latents)))
        let mean = try a.encode(image)
        #expect(mean.shape == [1, 4, 5, 3])
        #expect(try backend.floats(mean) == backend.floats(try b.encode(image)))
    }

    /// diffusers' old attention names (`query`, `key`, `value`, `proj_attn`), still renamed by `from_pretrained`.
    @Test func deprecatedAttentionNamesAreRead() throws {
        let name = "flux_l16"
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let original = try SafetensorsCheckpoint(path: fixturePath("vae", name, "diffusers"))
        var tensors: [String: HostTensor] = [:]
        let renames = [".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."]
        for key in original.names {
            var renamed = key
            for (new, old) in renames { renamed = renamed.replacingOccurrences(of: new, with: old) }
            tensors[renamed] = try original.tensor(key)
        }
        #expect(tensors.keys.contains("decoder.mid_block.attentions.0.proj_attn.weight"))
        try writeSafetensors(tensors, to: folder.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
        try FileManager.default.copyItem(atPath: fixturePath("vae", name, "diffusers", "config.json"),
                                         toPath: folder.appendingPathComponent("config.json").path)
        let (decode, encode) = try run(try AutoencoderCheckpoint.open(folder.path), name)
        #expect(decode <= 1e-4)
        #expect(encode <= 1e-4)
    }

    @Test func pipelineFolderUsesItsVAE() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("{\"_class_name\": \"FluxPipeline\"}".utf8).write(to: folder.appendingPathComponent("model_index.json"))
        try FileManager.default.copyItem(atPath: fixturePath("vae", "flux_l16", "diffusers"),
                                         toPath: folder.appendingPathComponent("vae").path)
        let checkpoint = try AutoencoderCheckpoint.open(folder.path)
        #expect(checkpoint.layout == .diffusersPipeline)
        #expect(checkpoint.config.latentChannels == 16)
        #expect(checkpoint.config.shiftFactor == 0.1159)
        #expect(checkpoint.availableParts == .all)
    }

    @Test func fluxConfigHasThePublishedSize() {
        // FLUX.1's VAE: 83.8 M parameters (diffusers AutoencoderKL with the FLUX config, counted in PyTorch).
        let count = VAEKeyMap.referenceShapes(for: .flux).reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(count == 83_819_683)
        #expect(AutoencoderConfig.flux.downsamplingFactor == 8)
    }

    @Test func pipelineScalingIsTheInverseOfEncodeScaling() throws {
        let backend = CPUBackend()
        let checkpoint = try AutoencoderCheckpoint.open(fixturePath("vae", "flux_l16", "diffusers"))
        let model = try checkpoint.load(on: backend, parts: .decoder)
        let x = try backend.tensor([0, 1, -2.5, 0.3611], shape: [4])
        let unscaled = try backend.floats(try model.unscaleLatents(x))
        for (u, v) in zip(unscaled, [Float(0), 1, -2.5, 0.3611]) { #expect(abs(u - (v / 0.3611 + 0.1159)) < 1e-5) }
        let back = try backend.floats(try model.scaleLatents(try model.unscaleLatents(x)))
        #expect(maxRelativeError(back, [0, 1, -2.5, 0.3611]) < 1e-6)
    }

    // MARK: Errors

    /// The fixture's diffusers tensors with `edit` applied, written to a new folder with its config.
    func editedCopy(_ name: String, _ edit: (inout [String: HostTensor]) -> Void) throws -> URL {
        let folder = try Self.temporaryFolder()
        let original = try SafetensorsCheckpoint(path: fixturePath("vae", name, "diffusers"))
        var tensors: [String: HostTensor] = [:]
        for key in original.names { tensors[key] = try original.tensor(key) }
        edit(&tensors)
        try writeSafetensors(tensors, to: folder.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
        try FileManager.default.copyItem(atPath: fixturePath("vae", name, "diffusers", "config.json"),
                                         toPath: folder.appendingPathComponent("config.json").path)
        return folder
    }

    @Test func missingWeightIsReportedByName() throws {
        let missing = "decoder.up_blocks.1.resnets.0.conv_shortcut.weight"
        let folder = try editedCopy("flux_l16") { $0[missing] = nil }
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = try AutoencoderCheckpoint.open(folder.path)
        #expect(checkpoint.missingWeights() == [missing])
        #expect(throws: ModelError.missingWeight(name: missing, source: folder.path)) {
            try checkpoint.load(on: CPUBackend())
        }
        // The encoder alone does not need it.
        _ = try checkpoint.load(on: CPUBackend(), parts: .encoder)
    }

    @Test func wrongShapeIsReportedWithBothShapes() throws {
        let name = "encoder.mid_block.attentions.0.to_k.weight"
        let folder = try editedCopy("flux_l16") { $0[name] = HostTensor([Float](repeating: 0, count: 16 * 8), shape: [16, 8]) }
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = try AutoencoderCheckpoint.open(folder.path)
        #expect(throws: ModelError.weightShape(name: name, shape: [16, 8], expected: [16, 16], source: folder.path)) {
            try checkpoint.load(on: CPUBackend())
        }
    }

    @Test func badInputsAndConfigsGiveTypedErrors() throws {
        let backend = CPUBackend()
        let checkpoint = try AutoencoderCheckpoint.open(fixturePath("vae", "quant_3level_b2", "diffusers"))
        let model = try checkpoint.load(on: backend)
        // Latents with the wrong channel count, an image too small for two downsamplings, a rank-3 image.
        #expect(throws: ModelError.self) { try model.decode(try backend.tensor(.init(repeating: 0, count: 30), shape: [1, 5, 2, 3])) }
        #expect(throws: ModelError.self) { try model.encode(try backend.tensor(.init(repeating: 0, count: 30), shape: [1, 3, 10, 1])) }
        #expect(throws: ModelError.self) { try model.encode(try backend.tensor(.init(repeating: 0, count: 30), shape: [3, 2, 5])) }
        #expect(model.latentSize(height: 4, width: 4).map { [$0.height, $0.width] } == [1, 1])
        #expect(model.latentSize(height: 3, width: 9) == nil)
        // Only the decoder was loaded.
        let decoderOnly = try checkpoint.load(on: backend, parts: .decoder)
        #expect(throws: ModelError.self) { try decoderOnly.encode(try backend.tensor(.init(repeating: 0, count: 48), shape: [1, 3, 4, 4])) }

        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(atPath: fixturePath("vae", "flux_l16", "diffusers"),
                                         toPath: folder.appendingPathComponent("v").path)
        let configURL = folder.appendingPathComponent("v/config.json")
        let original = try Data(contentsOf: configURL)
        for (key, value) in [("norm_num_groups", 3 as Any), ("up_block_types", ["UpDecoderBlock2D"]),
                             ("act_fn", "gelu"), ("layers_per_block", 0), ("block_out_channels", [Int]())] {
            var json = try #require(try JSONSerialization.jsonObject(with: original) as? [String: Any])
            json[key] = value
            try JSONSerialization.data(withJSONObject: json).write(to: configURL)
            #expect(throws: ModelError.self, "config with \(key) = \(value)") {
                try AutoencoderCheckpoint.open(folder.appendingPathComponent("v").path)
            }
        }
        try Data("{not json".utf8).write(to: configURL)
        #expect(throws: ModelError.self) { try AutoencoderCheckpoint.open(folder.appendingPathComponent("v").path) }
        // A safetensors file holding no VAE.
        let other = folder.appendingPathComponent("other.safetensors").path
        try writeSafetensors(["img_in.weight": HostTensor([1, 2], shape: [2])], to: other)
        #expect(throws: ModelError.self) { try AutoencoderCheckpoint.open(other) }
        #expect(throws: ModelError.self) { try AutoencoderCheckpoint.open(folder.appendingPathComponent("nope").path) }
    }
}

/// Decode timing on the CPU, run only when `FLUXSERVE_VAE_BENCH` names a diffusers VAE folder (e.g. random weights at
/// FLUX.1's widths or scaled down): `FLUXSERVE_VAE_BENCH=/tmp/vae swift test -c release -Xswiftc -enable-testing
/// --filter VAEDecodeTiming`. Prints wall and process CPU time of loading and of decoding a (1, 16, 16, 16) latent.
@Suite struct VAEDecodeTiming {
    static let folder = ProcessInfo.processInfo.environment["FLUXSERVE_VAE_BENCH"]

    static func seconds(_ clock: clockid_t) -> Double {
        var t = timespec()
        clock_gettime(clock, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    static func measure<T>(_ body: () throws -> T) rethrows -> (T, wall: Double, cpu: Double) {
        let (wall, cpu) = (seconds(CLOCK_MONOTONIC), seconds(CLOCK_PROCESS_CPUTIME_ID))
        let result = try body()
        return (result, seconds(CLOCK_MONOTONIC) - wall, seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu)
    }

    @Test(.enabled(if: folder != nil, "set FLUXSERVE_VAE_BENCH to a diffusers VAE folder to time decoding"))
    func decode16x16() throws {
        let backend = CPUBackend()
        let checkpoint = try AutoencoderCheckpoint.open(try #require(Self.folder))
        let (model, loadWall, loadCPU) = try Self.measure { try checkpoint.load(on: backend, parts: .decoder) }
        let c = checkpoint.config
        let count = c.latentChannels * 16 * 16
        let latents = try backend.tensor((0..<count).map { Float(($0 * 7919) % 1000) / 500 - 1 },
                                         shape: [1, c.latentChannels, 16, 16])
        print("vae timing \(c.blockOutChannels), \(c.layersPerBlock) layers: load wall \(loadWall) s, cpu \(loadCPU) s")
        for run in 0..<3 {
            let (image, wall, cpu) = try Self.measure { try model.decode(latents) }
            print("vae timing decode \(latents.shape) → \(image.shape) run \(run): wall \(wall) s, cpu \(cpu) s")
        }
    }
}
