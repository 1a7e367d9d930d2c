import ArgumentParser
import FluxCUDA
import FluxCore
import FluxModel
import Foundation

/// `fluxserve generate PROMPT --model M -o out.png`: one or more images, with a progress bar and PNG metadata.
///
/// Everything that can be judged before the weights load is judged first (values, the output path, the model's
/// files), so a mistake costs a second, not a generation.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate images from a text prompt, or edit an image (--image, --mask, --outpaint).")

    @Argument(help: "The prompt.")
    var prompt: String

    @OptionGroup var model: ModelOptions

    @Option(name: [.short, .customLong("output")], help: "PNG to write; with --num-images N, NAME-1.png … NAME-N.png.")
    var output: String = "out.png"

    // Numbers are parsed unconditionally so that a negative one reaches the rules below and is refused by name
    // (the parser alone would take "-1" for an option and say "missing value").
    @Option(parsing: .unconditional,
            help: "Random seed, 0…18446744073709551615; -1 or none: a random one (printed and stored in the PNG).")
    var seed: String?

    @Option(parsing: .unconditional, help: "Denoising steps (default: the model's, e.g. 28 for dev, 4 for schnell).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Guidance scale for guidance-distilled models (default 3.5 for dev).")
    var guidance: Float?

    @Option(parsing: .unconditional, help: "Image width in pixels, a multiple of 16.")
    var width: Int?

    @Option(parsing: .unconditional, help: "Image height in pixels, a multiple of 16.")
    var height: Int?

    @Option(parsing: .unconditional, help: "Images to generate.")
    var numImages: Int = 1

    @Option(parsing: .unconditional, help: "First Block Cache threshold (0 = off; 0.05–0.3 trade quality for speed).")
    var cacheThreshold: Float = 0

    @Option(parsing: .unconditional, help: "T5 tokens (default 512 for dev, 256 for schnell).")
    var maxSequenceLength: Int?

    @OptionGroup(title: "Image inputs and true CFG") var edit: EditOptions
    @OptionGroup(title: "LoRA") var lora: LoRAOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var quantization: QuantizationOptions

    func run() throws {
        try reportingErrors {
            let seed = try SeedArgument.resolve(self.seed)
            let files = try OutputFiles(output, count: numImages)
            let components = try model.resolve()
            let defaults = try PipelineDefaults.of(components)
            if (width == nil) != (height == nil) && edit.image != nil {
                throw ValidationError("--width and --height: give both or neither with --image (neither: from the image)")
            }
            let inputs = try edit.load(variant: components.variant, size: width.flatMap { w in height.map { (w, $0) } },
                                       sideMultiple: 2 * components.vae.config.downsamplingFactor)
            let request = GenerationRequest(
                prompts: [prompt], width: inputs?.prepared.width ?? width ?? defaults.width,
                height: inputs?.prepared.height ?? height ?? defaults.height,
                steps: steps ?? defaults.steps, guidanceScale: guidance ?? defaults.guidance,
                seed: seed, imagesPerPrompt: numImages, cacheThreshold: cacheThreshold,
                maxSequenceLength: maxSequenceLength ?? defaults.maxSequenceLength,
                negativePrompts: edit.negativePrompt.map { [$0] } ?? [], trueCFGScale: edit.trueCfgScale,
                strength: edit.strength, image: inputs?.prepared.image, mask: inputs?.prepared.mask)
            try GenerationRules.commandLine(request, sideMultiple: 2 * components.vae.config.downsamplingFactor)
            let mode = try GenerationMode.of(variant: components.variant, image: request.image != nil,
                                             mask: request.mask != nil)
            // Size and sequence length against the model's geometry, before any weight is loaded.
            try LatentGeometry(height: request.height, width: request.width,
                               vaeScaleFactor: components.vae.config.downsamplingFactor,
                               latentChannels: components.vae.config.latentChannels)
            let loras = try lora.checkedStack(for: components)  // every key matched to a layer that fits
            files.announceReplacements()
            if !isFolder(components.path) { printError("vae: \(components.vae.path)") }  // single file: which one

            let backend = try device.makeBackend()
            let heldBefore = try (backend as? any MemoryReporting)?.memoryUsage().current
            let loadStart = Date()
            let pipeline = try FluxPipeline(components, backend: backend, quantization: quantization.quantize,
                                            loras: loras, lora: lora.application)
            try pipeline.validate(request)
            let loadSeconds = Date().timeIntervalSince(loadStart)
            // Bytes the weights took on the device (allocator size classes included), per second of loading.
            let loaded = try heldBefore.flatMap { before in
                try (backend as? any MemoryReporting).map { Double(try $0.memoryUsage().current - before) / 1e9 }
            }
            let rate = loaded.map { String(format: " (%.2f GB on %@, %.2f GB/s)", $0, backend.name,
                                           $0 / max(loadSeconds, 1e-9)) } ?? ""
            printError(String(format: "loaded %@%@ in %.1fs%@; seed %llu, %d steps, %d×%d, %@",
                              model.name, loras.isEmpty ? "" : " with LoRA " + loras.summary, loadSeconds, rate,
                              request.seed, request.steps, request.width, request.height, mode.rawValue))
            if let cuda = backend as? CUDABackend, let reason = cuda.pinnedUploadFailure {
                printError("warning: uploads went the slow (pageable) way: \(reason)")
            }
            let truncations = pipeline.truncations(of: prompt, maxSequenceLength: request.maxSequenceLength)
            for cut in truncations { printError("warning: " + cut.message) }

            let reporter = ProgressReporter(label: "denoise")
            let result = try pipeline.generate(request) { reporter.report($0) }
            let metadata = ImageMetadata(
                prompt: prompt, request: request, model: model.name,
                modelHash: try components.transformer.fingerprint(), quantization: quantization.quantize,
                truncations: truncations, software: "fluxserve \(fluxServeVersion)", edit: inputs?.record,
                loras: loras.records)
            for i in 0..<request.batch {
                let png = try PNG.encode(rgb: result.rgb(i), width: request.width, height: request.height,
                                         text: metadata.textChunks(seed: request.seed &+ UInt64(i)))
                try files.write(Data(png), index: i)
                print(files.paths[i])
            }
            let timings = ["encode", "denoise", "decode"].map { String(format: "%@ %.2fs", $0, result.timings[$0] ?? 0) }
            let cached = request.cacheThreshold > 0
                ? "; First Block Cache skipped \(result.skippedSteps.count) of \(request.steps) steps" : ""
            printError(timings.joined(separator: ", ") + cached)
        }
    }
}

extension ModelVariant: ExpressibleByArgument {}

/// `--model` and the parts a single-file checkpoint needs.
struct ModelOptions: ParsableArguments {
    @Option(help: "A diffusers pipeline folder, a Hugging Face id in the local cache (org/name), a single-file transformer, or 'demo'.")
    var model: String

    @Option(help: "For a single-file transformer: a pipeline folder with the text encoders, tokenizers and scheduler.")
    var textEncoders: String?

    @Option(help: "For a single-file transformer: the VAE (ae.safetensors or a vae folder); default: ae.safetensors beside it.")
    var vae: String?

    @Option(help: "A diffusers transformer config.json for a single file whose architecture cannot be inferred.")
    var transformerConfig: String?

    @Option(help: ArgumentHelp("base, fill or kontext: what the model does with --image, when its files cannot tell.",
                               discussion: "Pipeline folders say it in model_index.json and Fill is known by its "
                                   + "shape; a single-file Kontext transformer is known by 'kontext' in its name."))
    var variant: ModelVariant?

    var name: String { model }

    func resolve() throws -> PipelineComponents {
        try Self.resolve(model: model, textEncoders: textEncoders, vae: vae, transformerConfig: transformerConfig,
                         variant: variant)
    }

    /// `model` (a path, `org/name` or `demo`) as `--model` resolves it, with the single-file options.
    static func resolve(model: String, textEncoders: String? = nil, vae: String? = nil,
                        transformerConfig: String? = nil, variant: ModelVariant? = nil) throws -> PipelineComponents {
        let path = try ModelLocator().path(for: model)
        let config = try transformerConfig.map { try FluxConfig.load(contentsOf: $0) }
        return try PipelineComponents.resolve(path, overrides: .init(textEncoders: textEncoders, vae: vae,
                                                                     transformerConfig: config, variant: variant))
    }
}
