import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// Issue 13, item 6: img2img and inpainting on the demo model, read back with the demo's shape reader. Six
/// single-object pictures are drawn, then redrawn from those pictures with the colour changed in the prompt:
/// at strength 0.3 the shapes stay what they were; at 0.8 the colour becomes the new one; inpainting the right half
/// keeps the left half as it was. One batch per run, each image its own input (N = batch).
@Suite(.serialized) struct DemoEditTests {
    static let scenes: [(shape: String, from: String, to: String)] = [
        ("circle", "red", "blue"), ("square", "orange", "green"), ("triangle", "yellow", "purple"),
        ("star", "blue", "orange"), ("square", "gray", "red"), ("circle", "green", "pink"),
    ]

    let pipeline: FluxPipeline
    let defaults: PipelineDefaults
    let sources: GenerationResult

    init() throws {
        let components = try PipelineComponents.resolve(demoModelPath)
        let defaults = try PipelineDefaults.of(components)
        let pipeline = try FluxPipeline(components, backend: CPUBackend())
        sources = try pipeline.generate(Self.request(Self.scenes.map { "a \($0.from) \($0.shape) on a white background" },
                                                     defaults: defaults))
        (self.defaults, self.pipeline) = (defaults, pipeline)
    }

    func request(_ prompts: [String], strength: Double? = nil, image: HostTensor? = nil, mask: HostTensor? = nil)
        -> GenerationRequest
    {
        Self.request(prompts, defaults: defaults, strength: strength, image: image, mask: mask)
    }

    static func request(_ prompts: [String], defaults: PipelineDefaults, strength: Double? = nil,
                        image: HostTensor? = nil, mask: HostTensor? = nil) -> GenerationRequest {
        GenerationRequest(prompts: prompts, width: defaults.width, height: defaults.height, steps: defaults.steps,
                          guidanceScale: defaults.guidance, seed: 5, maxSequenceLength: defaults.maxSequenceLength,
                          strength: strength, image: image, mask: mask)
    }

    func readings(_ result: GenerationResult) -> [ShapeReading] {
        (0..<Self.scenes.count).map { ShapeReading(rgb: result.rgb($0), width: defaults.width, height: defaults.height) }
    }

    var recoloured: [String] { Self.scenes.map { "a \($0.to) \($0.shape) on a white background" } }

    @Test func lowStrengthKeepsTheShapeHighStrengthTakesTheNewColour() throws {
        let before = readings(sources)
        let low = readings(try pipeline.generate(request(recoloured, strength: 0.3, image: sources.images)))
        let high = readings(try pipeline.generate(request(recoloured, strength: 0.8, image: sources.images)))
        var kept = 0, changed = 0
        for (i, scene) in Self.scenes.enumerated() {
            print("demo edit \(scene): source \(before[i].objects.map { "\($0.color) \($0.shape)" }), "
                  + "0.3 → \(low[i].objects.map { "\($0.color) \($0.shape)" }), "
                  + "0.8 → \(high[i].objects.map { "\($0.color) \($0.shape)" })")
            kept += low[i].objects.first?.shape == before[i].objects.first?.shape ? 1 : 0
            changed += high[i].objects.first?.color == scene.to ? 1 : 0
        }
        print("demo edit: shape kept at 0.3 in \(kept)/6, colour taken at 0.8 in \(changed)/6")
        #expect(kept >= 5)
        #expect(changed >= 5)
    }

    @Test func inpaintingKeepsTheUnmaskedHalf() throws {
        let (w, h) = (defaults.width, defaults.height)
        let plane = (0..<(h * w)).map { Float($0 % w >= w / 2 ? 1 : 0) }
        let mask = HostTensor(Array(repeating: plane, count: Self.scenes.count).flatMap { $0 },
                              shape: [Self.scenes.count, 1, h, w])
        let result = try pipeline.generate(request(recoloured, strength: 1, image: sources.images, mask: mask))
        let (a, b) = (sources.images.floats(), result.images.floats())
        var kept = 0.0, repainted = 0.0
        for i in 0..<a.count {
            let column = i % w, difference = Double(abs(a[i] - b[i]))
            if column < w / 2 - 8 { kept += difference } else if column >= w / 2 { repainted += difference }
        }
        kept /= Double(a.count / 2 - a.count / w * 8)
        repainted /= Double(a.count / 2)
        print("demo inpaint: mean |Δ| kept half \(kept), repainted half \(repainted)")
        // The kept half goes through the VAE once more (and its latents through the blend), so it is not exact.
        #expect(kept < 0.02)
        #expect(repainted > 3 * kept)
    }
}
