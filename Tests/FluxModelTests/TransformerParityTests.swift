import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// The FLUX transformer against diffusers 0.42.1 on tiny random configs (`tools/reference/make_transformer_fixtures.py`):
/// the same weights as a diffusers folder and as a BFL single file must give diffusers' `sample` within 1e-4 (f32).
@Suite struct TransformerParityTests {
    static let cases: [String] = {
        let root = fixturePath("transformer")
        return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: "\(root)/\($0)/inputs.safetensors") }
    }()

    @Test func fixturesArePresent() {
        #expect(Self.cases.count >= 3, "expected at least three transformer fixtures")
    }

    @Test(arguments: cases) func diffusersLayout(_ name: String) throws {
        let checkpoint = try TransformerCheckpoint.open(fixturePath("transformer", name, "diffusers"))
        #expect(checkpoint.layout == .diffusersModel)
        let error = try run(checkpoint, name)
        print("transformer parity \(name) diffusers layout: max relative error \(error)")
        #expect(error <= 1e-4)
    }

    @Test(arguments: cases) func bflSingleFile(_ name: String) throws {
        let config = try FluxConfig.load(contentsOf: fixturePath("transformer", name, "diffusers", "config.json"))
        let checkpoint = try TransformerCheckpoint.open(fixturePath("transformer", name, "flux1.safetensors"),
                                                        config: config)
        #expect(checkpoint.layout == .bflSingleFile)
        #expect(checkpoint.missingWeights().isEmpty)
        #expect(checkpoint.unexpectedTensors().isEmpty)
        let error = try run(checkpoint, name)
        print("transformer parity \(name) BFL layout: max relative error \(error)")
        #expect(error <= 1e-4)
    }

    /// The BFL file's inferred architecture equals the diffusers config in everything shapes can tell.
    @Test(arguments: cases) func inferredConfigMatches(_ name: String) throws {
        let config = try FluxConfig.load(contentsOf: fixturePath("transformer", name, "diffusers", "config.json"))
        let file = try SafetensorsCheckpoint(path: fixturePath("transformer", name, "flux1.safetensors"))
        let source = WeightSource(checkpoint: file, description: name, recipe: FluxKeyMap.bflRecipe(prefix: ""))
        do {
            let inferred = try TransformerCheckpoint.inferConfig(source, path: name)
            #expect(inferred == config)
        } catch let error as ModelError {
            // Tiny configs have head dims other than 128, whose RoPE axes no shape reveals: the error must say so.
            #expect(config.attentionHeadDim != 128)
            #expect(error.description.contains("axes_dims_rope"))
        }
    }

    /// `--quantize fp8` (the blocks' linear layers in e4m3 with row scales, activations quantized per token) against
    /// diffusers' f32 sample: within the error fp8 is known for (4 significant bits: a few % of the largest value after
    /// a dozen products), and clearly not exact, so the quantized path is the one that ran. The bf16 case's 24-wide
    /// layers are not multiples of 16 and stay dense, so it is exact.
    @Test(arguments: cases) func fp8Quantized(_ name: String) throws {
        let checkpoint = try TransformerCheckpoint.open(fixturePath("transformer", name, "diffusers"))
        let quantizable = checkpoint.config.hiddenSize % 16 == 0
        let error = try run(checkpoint, name, quantization: .fp8)
        print("transformer \(name) fp8: max relative error \(error)")
        #expect(error <= (quantizable ? 0.1 : 1e-4))
        if quantizable { #expect(error >= 1e-3) }
    }

    /// Runs the fixture's inputs through `checkpoint` on the CPU and returns the error against diffusers' sample.
    func run(_ checkpoint: TransformerCheckpoint, _ name: String, quantization: LinearQuantization = .none) throws
        -> Float
    {
        let backend = CPUBackend()
        let model = try checkpoint.load(on: backend, quantization: quantization)
        let inputs = try SafetensorsFile(path: fixturePath("transformer", name, "inputs.safetensors"))
        let expected = try SafetensorsFile(path: fixturePath("transformer", name, "outputs.safetensors"))
        func ids(_ key: String) throws -> [[Double]] {
            let t = try inputs.tensor(key), values = t.floats(), axes = t.shape[1]
            return (0..<t.shape[0]).map { r in (0..<axes).map { Double(values[r * axes + $0]) } }
        }
        let guidance = inputs.info("guidance") == nil ? nil : try inputs.tensor("guidance").floats()
        let sample = try model(img: try backend.upload(try inputs.tensor("hidden_states")),
                               txt: try backend.upload(try inputs.tensor("encoder_hidden_states")),
                               y: try backend.upload(try inputs.tensor("pooled_projections")),
                               timesteps: try inputs.tensor("timestep").floats(), guidance: guidance,
                               pe: try model.positionEmbedding(txtIds: try ids("txt_ids"), imgIds: try ids("img_ids")))
        let reference = try expected.tensor("sample")
        #expect(sample.shape == reference.shape)
        return maxRelativeError(try backend.floats(sample), reference.floats())
    }
}
