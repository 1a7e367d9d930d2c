import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// Prompt → image against diffusers' FluxPipeline on tiny random pipelines (`tools/reference/make_pipeline_fixtures.py`):
/// the same initial latents must give the same image within 1e-3, and with First Block Cache the same steps skipped.
@Suite struct PipelineParityTests {
    static let cases: [String] = {
        let folder = fixturePath("pipeline", "cases")
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
            .filter { $0.hasSuffix(".inputs.safetensors") }.map { String($0.dropLast(".inputs.safetensors".count)) }
    }()

    @Test func fixturesArePresent() { #expect(Self.cases.count >= 4) }

    @Test(arguments: cases) func imageMatchesDiffusers(_ name: String) throws {
        let inputs = try SafetensorsFile(path: fixturePath("pipeline", "cases", "\(name).inputs.safetensors"))
        let expected = try SafetensorsFile(path: fixturePath("pipeline", "cases", "\(name).image.safetensors"))
        let m = inputs.metadata
        let backend = CPUBackend()
        let pipeline = try FluxPipeline(try PipelineComponents.resolve(fixturePath("pipeline", m["pipeline"] ?? "")),
                                        backend: backend)
        let latents = try inputs.tensor("latents")
        let request = GenerationRequest(
            prompts: [m["prompt"] ?? ""], width: Int(m["width"] ?? "") ?? 0, height: Int(m["height"] ?? "") ?? 0,
            steps: Int(m["num_inference_steps"] ?? "") ?? 0, guidanceScale: Float(m["guidance_scale"] ?? "") ?? 0,
            seed: 0, imagesPerPrompt: latents.shape[0], cacheThreshold: Float(m["cache_threshold"] ?? "") ?? 0,
            maxSequenceLength: Int(m["max_sequence_length"] ?? "") ?? 0)
        let result = try pipeline.generate(request, latents: try backend.upload(latents))
        let reference = try expected.tensor("image")
        #expect(result.images.shape == reference.shape)
        let error = maxRelativeError(result.images.floats(), reference.floats())
        print("pipeline parity \(name): max relative error \(error), skipped \(result.skippedSteps)")
        #expect(error <= 1e-3)
        let skipped = try JSONDecoder().decode([Int].self, from: Data((m["skipped_steps"] ?? "[]").utf8))
        #expect(result.skippedSteps == skipped)
    }
}
