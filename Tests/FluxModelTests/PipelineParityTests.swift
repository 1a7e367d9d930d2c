import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// The whole pipeline against diffusers on tiny random pipelines: text-to-image (`FluxPipeline`,
/// `tools/reference/make_pipeline_fixtures.py`) and the edit pipelines — img2img, inpainting, Fill (inpaint and
/// outpaint), Kontext (square and another output size) and true CFG (`make_edit_fixtures.py`). The same initial noise
/// (and image and mask) must give the same image within 1e-3, and with First Block Cache the same steps skipped.
@Suite struct PipelineParityTests {
    static let cases: [String] = {
        let folder = fixturePath("pipeline", "cases")
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
            .filter { $0.hasSuffix(".inputs.safetensors") }.map { String($0.dropLast(".inputs.safetensors".count)) }
    }()

    @Test func fixturesArePresent() { #expect(Self.cases.count >= 13) }

    /// The diffusers class each mode is checked against.
    static let classes: [String: GenerationMode] = [
        "FluxPipeline": .textToImage, "FluxImg2ImgPipeline": .imageToImage, "FluxInpaintPipeline": .inpainting,
        "FluxFillPipeline": .fill, "FluxKontextPipeline": .kontext,
    ]

    @Test(arguments: cases) func imageMatchesDiffusers(_ name: String) throws {
        let inputs = try SafetensorsFile(path: fixturePath("pipeline", "cases", "\(name).inputs.safetensors"))
        let expected = try SafetensorsFile(path: fixturePath("pipeline", "cases", "\(name).image.safetensors"))
        let m = inputs.metadata
        let backend = CPUBackend()
        let components = try PipelineComponents.resolve(fixturePath("pipeline", m["pipeline"] ?? ""))
        let pipeline = try FluxPipeline(components, backend: backend)
        let evalCase = try PipelineEvalCase(metadata: m, tensor: { inputs.info($0) == nil ? nil : try inputs.tensor($0) },
                                            defaults: try PipelineDefaults.of(components), source: name)
        #expect(try pipeline.mode(for: evalCase.request) == Self.classes[m["class"] ?? "FluxPipeline"])
        let result = try pipeline.generate(evalCase.request, latents: try backend.upload(evalCase.latents))
        let reference = try expected.tensor("image")
        #expect(result.images.shape == reference.shape)
        let error = maxRelativeError(result.images.floats(), reference.floats())
        print("pipeline parity \(name): max relative error \(error), skipped \(result.skippedSteps)")
        #expect(error <= 1e-3)
        let skipped = try JSONDecoder().decode([Int].self, from: Data((m["skipped_steps"] ?? "[]").utf8))
        #expect(result.skippedSteps == skipped)
    }
}
