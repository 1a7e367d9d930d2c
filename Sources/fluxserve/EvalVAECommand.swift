import ArgumentParser
import FluxCore
import FluxModel
import Foundation

/// Options of both VAE evals: the common ones plus an optional config override.
struct EvalVAEOptions: ParsableArguments {
    @OptionGroup var options: EvalOptions

    @Option(help: "A diffusers vae config.json to use instead of the checkpoint's (needed for single files whose norm_num_groups is not 32).")
    var config: String?

    func open() throws -> AutoencoderCheckpoint {
        let override = try config.map { try AutoencoderConfig.load(contentsOf: $0) }
        return try AutoencoderCheckpoint.open(try options.modelPath(), config: override)
    }
}

struct EvalVAEDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae-decode",
        abstract: "AutoencoderKL.decode: latents (B, latent_channels, h, w), as the pipeline passes them (already unscaled) → sample (B, out_channels, H, W).")

    @OptionGroup var vae: EvalVAEOptions

    func run() throws {
        try reportingErrors {
            let options = vae.options
            let backend = try options.device.makeBackend()
            let checkpoint = try vae.open()
            let c = checkpoint.config
            let inputs = try EvalInputs(path: options.inputs)
            let expected = "(B, \(c.latentChannels), h, w)"
            // `latents` as the issue names it; `z` is the argument name of diffusers' `AutoencoderKL.decode`.
            guard let latents = try inputs.optional("latents") ?? inputs.optional("z") else {
                throw ModelError.missingInput(name: "latents", expected: expected)
            }
            guard latents.shape.count == 4, latents.shape[1] == c.latentChannels else {
                throw ModelError.inputShape(name: "latents", shape: latents.shape, expected: expected)
            }
            let model = try checkpoint.load(on: backend, parts: .decoder)
            let sample = try model.decode(try backend.upload(latents))
            try writeSafetensors(["sample": try backend.download(sample)],
                                 metadata: ["producer": "fluxserve \(fluxServeVersion)", "component": "vae-decode"],
                                 to: options.output)
        }
    }
}

struct EvalVAEEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae-encode",
        abstract: "AutoencoderKL.encode: sample (B, in_channels, H, W) in −1…1 → latent_mean (the latent distribution's mean, before shift and scaling).")

    @OptionGroup var vae: EvalVAEOptions

    func run() throws {
        try reportingErrors {
            let options = vae.options
            let backend = try options.device.makeBackend()
            let checkpoint = try vae.open()
            let c = checkpoint.config
            let inputs = try EvalInputs(path: options.inputs)
            let expected = "(B, \(c.inChannels), H, W)"
            // `sample` is the argument name of `AutoencoderKL.forward`; `x` that of `AutoencoderKL.encode`.
            guard let sample = try inputs.optional("sample") ?? inputs.optional("x") else {
                throw ModelError.missingInput(name: "sample", expected: expected)
            }
            guard sample.shape.count == 4, sample.shape[1] == c.inChannels else {
                throw ModelError.inputShape(name: "sample", shape: sample.shape, expected: expected)
            }
            let model = try checkpoint.load(on: backend, parts: .encoder)
            let mean = try model.encode(try backend.upload(sample))
            try writeSafetensors(["latent_mean": try backend.download(mean)],
                                 metadata: ["producer": "fluxserve \(fluxServeVersion)", "component": "vae-encode"],
                                 to: options.output)
        }
    }
}
