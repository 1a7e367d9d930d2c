import ArgumentParser
import FluxCore
import FluxModel
import Foundation

/// `fluxserve eval pipeline`: the whole pipeline on given initial noise (and image and mask), as diffusers'
/// FluxPipeline, FluxImg2ImgPipeline, FluxInpaintPipeline, FluxFillPipeline or FluxKontextPipeline with
/// `output_type="pt"` (the contract: `PipelineEvalCase`).
struct EvalPipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "The whole pipeline: latents (B, S_img, C) packed noise[, image (N, 3, H, W) and mask_image (N, 1, H, W) in 0..1] + metadata prompt, height, width, num_inference_steps[, guidance_scale, max_sequence_length, cache_threshold, strength, negative_prompt, true_cfg_scale] → image (B, 3, H, W) in 0..1.",
        discussion: "The pipeline follows from the inputs and the model: an image makes it img2img (Kontext on a Kontext model), an image and a mask inpainting (Fill on a Fill model). Sizes are used as given; the VAE encoder's posterior mean is used where diffusers samples it.")

    @OptionGroup var options: EvalOptions
    @OptionGroup var quantization: QuantizationOptions
    @OptionGroup(title: "LoRA") var lora: LoRAOptions

    func run() throws {
        try reportingErrors {
            let inputs = try EvalInputs(path: options.inputs)
            let components = try PipelineComponents.resolve(options.modelPath())
            let evalCase = try PipelineEvalCase(metadata: inputs.file.metadata, tensor: inputs.optional,
                                                defaults: try PipelineDefaults.of(components), source: options.inputs)
            let request = evalCase.request
            let loras = try lora.checkedStack(for: components)
            let backend = try options.device.makeBackend()
            let pipeline = try FluxPipeline(components, backend: backend, quantization: quantization.quantize,
                                            loras: loras, lora: lora.application)
            let mode = try pipeline.validate(request)
            let result = try pipeline.generate(request, latents: try backend.upload(evalCase.latents))
            try writeSafetensors(["image": result.images],
                                 metadata: ["producer": "fluxserve \(fluxServeVersion)", "component": "pipeline",
                                            "mode": mode.rawValue, "skipped_steps": "\(result.skippedSteps)"],
                                 to: options.output)
            printError("ran \(mode.rawValue) (\(pipeline.variant.pipelineClass) model)")
            if request.cacheThreshold > 0 {
                printError("First Block Cache skipped \(result.skippedSteps.count) of \(request.steps) steps: \(result.skippedSteps)")
            }
        }
    }
}
