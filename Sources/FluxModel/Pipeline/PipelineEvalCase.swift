import FluxCore

/// The `eval pipeline` contract, so that any outside reference can check the whole pipeline: a safetensors file with
/// tensors `latents` = the packed Gaussian noise (B, sequence, channels) (what diffusers draws with `randn_tensor`,
/// packed), optionally `image` (N, 3, H, W) in 0…1 and `mask_image` (N, 1, H, W) in 0…1 (1 = repaint), and metadata
/// `prompt`, `height`, `width`, `num_inference_steps`, optionally `guidance_scale`, `max_sequence_length`,
/// `cache_threshold`, `strength`, `negative_prompt`, `true_cfg_scale`. Keys it does not know are ignored. The
/// pipeline follows from what is given and the model (`FluxPipeline.mode(for:)`); sizes are used as given, nothing
/// is resized.
public struct PipelineEvalCase: Sendable {
    public let request: GenerationRequest
    /// The packed initial noise.
    public let latents: HostTensor

    /// Reads a case; `source` names the file in errors, `defaults` fill the optional numbers.
    public init(metadata m: [String: String], tensor: (String) throws -> HostTensor?, defaults: PipelineDefaults,
                source: String) throws {
        func text(_ key: String) throws -> String {
            guard let value = m[key] else {
                throw ModelError.invalidConfig(source: source, reason: "metadata \(key) is missing")
            }
            return value
        }
        func number<T: LosslessStringConvertible>(_ key: String, _ fallback: T? = nil) throws -> T {
            guard m[key] != nil || fallback == nil else { return fallback! }
            let raw = try text(key)
            guard let value = T(raw.trimmingCharacters(in: .whitespaces)) else {
                throw ModelError.invalidConfig(source: source, reason: "metadata \(key) = \"\(raw)\" is not a number")
            }
            return value
        }
        guard let latents = try tensor("latents") else {
            throw ModelError.missingInput(name: "latents", expected: "(B, S_img, C) packed initial noise")
        }
        guard latents.shape.count == 3, latents.shape[0] >= 1 else {
            throw ModelError.inputShape(name: "latents", shape: latents.shape, expected: "(B, S_img, C)")
        }
        self.latents = latents
        let negative = m["negative_prompt"]
        request = GenerationRequest(
            prompts: [try text("prompt")], width: try number("width"), height: try number("height"),
            steps: try number("num_inference_steps"), guidanceScale: try number("guidance_scale", defaults.guidance),
            seed: 0, imagesPerPrompt: latents.shape[0], cacheThreshold: try number("cache_threshold", 0),
            maxSequenceLength: try number("max_sequence_length", 512),
            negativePrompts: negative.map { [$0] } ?? [],
            trueCFGScale: try number("true_cfg_scale", 1), strength: m["strength"] == nil ? nil : try number("strength"),
            image: try tensor("image"), mask: try tensor("mask_image"))
    }
}
