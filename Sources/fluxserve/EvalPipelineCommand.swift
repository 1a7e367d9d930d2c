import ArgumentParser
import FluxCore
import FluxModel
import Foundation

/// `fluxserve eval pipeline`: the whole text-to-image pipeline on given initial latents, as diffusers' FluxPipeline
/// with `latents=` and `output_type="pt"`.
struct EvalPipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "FluxPipeline: latents (B, S_img, C) + metadata prompt, height, width, num_inference_steps, guidance_scale[, max_sequence_length, cache_threshold] → image (B, 3, H, W) in 0..1.")

    @OptionGroup var options: EvalOptions
    @OptionGroup var quantization: QuantizationOptions

    func run() throws {
        try reportingErrors {
            let inputs = try EvalInputs(path: options.inputs)
            let m = inputs.file.metadata
            func number<T: LosslessStringConvertible>(_ key: String, _ fallback: T? = nil) throws -> T {
                guard let text = m[key] else {
                    if let fallback { return fallback }
                    throw ValidationError("\(options.inputs): metadata \(key) is missing")
                }
                guard let value = T(text.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("\(options.inputs): metadata \(key) = \"\(text)\" is not a number")
                }
                return value
            }
            guard let prompt = m["prompt"] else { throw ValidationError("\(options.inputs): metadata prompt is missing") }
            let latents = try inputs.require("latents", expected: "(B, S_img, C) packed initial noise")
            guard latents.shape.count == 3, latents.shape[0] >= 1 else {
                throw ModelError.inputShape(name: "latents", shape: latents.shape, expected: "(B, S_img, C)")
            }
            let components = try PipelineComponents.resolve(options.modelPath())
            let defaults = try PipelineDefaults.of(components)
            let request = GenerationRequest(
                prompts: [prompt], width: try number("width"), height: try number("height"),
                steps: try number("num_inference_steps"), guidanceScale: try number("guidance_scale", defaults.guidance),
                seed: 0, imagesPerPrompt: latents.shape[0], cacheThreshold: try number("cache_threshold", 0),
                maxSequenceLength: try number("max_sequence_length", 512))
            let backend = try options.device.makeBackend()
            let pipeline = try FluxPipeline(components, backend: backend, quantization: quantization.quantize)
            let result = try pipeline.generate(request, latents: try backend.upload(latents))
            try writeSafetensors(["image": result.images],
                                 metadata: ["producer": "fluxserve \(fluxServeVersion)", "component": "pipeline",
                                            "skipped_steps": "\(result.skippedSteps)"],
                                 to: options.output)
            if request.cacheThreshold > 0 {
                printError("First Block Cache skipped \(result.skippedSteps.count) of \(request.steps) steps: \(result.skippedSteps)")
            }
        }
    }
}
