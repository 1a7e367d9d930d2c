import FluxCore
import Foundation

/// What a generated PNG records: every setting that changes its pixels, under our own keys and as the `parameters`
/// line that A1111, Forge and the image viewers that follow them read (`Steps: …, Sampler: …, Seed: …`).
public struct ImageMetadata: Sendable {
    public var prompt: String
    public var request: GenerationRequest
    /// The model as the user named it (`demo`, `black-forest-labs/FLUX.1-dev`, a path).
    public var model: String
    /// `TransformerCheckpoint.fingerprint()`.
    public var modelHash: String
    public var quantization: LinearQuantization
    public var truncations: [PromptTruncation]
    public var software: String
    /// What an edit started from, when it was one.
    public var edit: EditRecord?
    /// The LoRAs applied, in stack order (empty: none).
    public var loras: [LoRARecord] = []

    /// An edit's inputs: the pipeline, the SHA-256 of the input files as given, how the mask was read ("white" =
    /// repaint, or OpenAI's "transparent"), the border added for outpainting.
    public struct EditRecord: Sendable {
        public var mode: GenerationMode
        public var imageSHA256: String
        public var maskSHA256: String?
        public var maskRule: String?
        public var outpaint: Outpaint?

        public init(mode: GenerationMode, imageSHA256: String, maskSHA256: String? = nil, maskRule: String? = nil,
                    outpaint: Outpaint? = nil) {
            (self.mode, self.imageSHA256, self.maskSHA256) = (mode, imageSHA256, maskSHA256)
            (self.maskRule, self.outpaint) = (maskRule, outpaint)
        }
    }

    /// One LoRA of the stack: the file's name (without `.safetensors`), the SHA-256 of the whole file (lower-case
    /// hex) and the user's scale (which multiplies the file's own alpha / rank).
    public struct LoRARecord: Sendable, Codable, Equatable {
        public var name: String
        public var sha256: String
        public var scale: Double

        public init(name: String, sha256: String, scale: Double) {
            (self.name, self.sha256, self.scale) = (name, sha256, scale)
        }

        /// A1111's short hash of a network file: the first 12 hex digits of its SHA-256.
        public var shortHash: String { String(sha256.prefix(12)) }

        /// The name as A1111 writes it in `Lora hashes` and `<lora:…>` tags: without `:` and `,`, which separate
        /// the entries there.
        var a1111Name: String { name.replacingOccurrences(of: ":", with: "").replacingOccurrences(of: ",", with: "") }
    }

    public init(prompt: String, request: GenerationRequest, model: String, modelHash: String,
                quantization: LinearQuantization, truncations: [PromptTruncation], software: String,
                edit: EditRecord? = nil, loras: [LoRARecord] = []) {
        (self.prompt, self.request, self.model, self.modelHash) = (prompt, request, model, modelHash)
        (self.quantization, self.truncations, self.software, self.edit) = (quantization, truncations, software, edit)
        self.loras = loras
    }

    /// The strength an edit ran with (the pipeline's default when none was given), or nil.
    var strength: Double? {
        guard let mode = edit?.mode, mode.usesStrength else { return nil }
        return request.strength ?? mode.defaultStrength
    }

    /// The text chunks of image `seed` (image i of a request uses seed + i).
    public func textChunks(seed: UInt64) -> [(key: String, value: String)] {
        let r = request
        var chunks: [(key: String, value: String)] = [
            ("prompt", prompt), ("seed", "\(seed)"), ("steps", "\(r.steps)"), ("guidance", Self.number(r.guidanceScale)),
            ("width", "\(r.width)"), ("height", "\(r.height)"), ("model", model), ("model_hash", modelHash),
            ("quantization", quantization.rawValue), ("max_sequence_length", "\(r.maxSequenceLength)"),
            ("cache_threshold", Self.number(r.cacheThreshold)),
        ]
        if r.usesTrueCFG {
            chunks.append(("negative_prompt", r.negativePrompts.joined(separator: "\n")))
            chunks.append(("true_cfg_scale", Self.number(r.trueCFGScale)))
        }
        if let edit {
            chunks.append(("mode", edit.mode.rawValue))
            if let strength { chunks.append(("strength", Self.number(strength))) }
            chunks.append(("image_sha256", edit.imageSHA256))
            if let mask = edit.maskSHA256 { chunks.append(("mask_sha256", mask)) }
            if edit.maskSHA256 != nil, let rule = edit.maskRule { chunks.append(("mask_rule", rule)) }
            if let o = edit.outpaint { chunks.append(("outpaint", "\(o.left),\(o.top),\(o.right),\(o.bottom)")) }
        }
        if !loras.isEmpty { chunks.append(("loras", Self.json(loras))) }
        if !truncations.isEmpty {
            chunks.append(("truncated", PromptTruncation.summary(truncations)))
        }
        chunks.append(("Software", software))
        chunks.append(("parameters", parameters(seed: seed)))
        return chunks
    }

    /// The A1111 `parameters` chunk: the prompt, then `Key: value` pairs with the names A1111/Forge use for what they
    /// have (`Distilled CFG Scale` is Forge's name for FLUX's guidance; `CFG scale` is 1, FLUX.1-dev runs without
    /// classifier-free guidance unless true CFG is on), then ours. A negative prompt is A1111's second line; an
    /// edit's strength is its `Denoising strength`. LoRAs are written as A1111 writes them: a `<lora:name:scale>` tag
    /// per LoRA after the prompt (where A1111's user typed it) and `Lora hashes: "name: <12 hex>, …"`.
    public func parameters(seed: UInt64) -> String {
        let r = request
        var pairs: [(String, String)] = [
            ("Steps", "\(r.steps)"), ("Sampler", "Euler"), ("Schedule type", "Simple"),
            ("CFG scale", r.usesTrueCFG ? Self.number(r.trueCFGScale) : "1"),
            ("Distilled CFG Scale", Self.number(r.guidanceScale)), ("Seed", "\(seed)"),
            ("Size", "\(r.width)x\(r.height)"), ("Model hash", modelHash), ("Model", model),
            ("Max sequence length", "\(r.maxSequenceLength)"),
        ]
        if let strength { pairs.append(("Denoising strength", Self.number(strength))) }
        if let edit { pairs.append(("Edit", edit.mode.rawValue)) }
        if r.cacheThreshold > 0 { pairs.append(("First Block Cache", Self.number(r.cacheThreshold))) }
        if quantization != .none { pairs.append(("Quantization", quantization.rawValue)) }
        if !loras.isEmpty {
            pairs.append(("Lora hashes", loras.map { "\($0.a1111Name): \($0.shortHash)" }.joined(separator: ", ")))
        }
        pairs.append(("Version", software))
        let tags = loras.map { " <lora:\($0.a1111Name):\(Self.number($0.scale))>" }.joined()
        let negative = r.usesTrueCFG ? "Negative prompt: " + r.negativePrompts.joined(separator: " ") + "\n" : ""
        return prompt + tags + "\n" + negative
            + pairs.map { "\($0.0): \(Self.quoted($0.1))" }.joined(separator: ", ")
    }

    /// A value as A1111 writes it: JSON-quoted when it holds a comma, colon or quote, so the line still splits.
    static func quoted(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == ":" || $0 == "\"" || $0 == "\n" }) else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }

    /// `[{"name": …, "sha256": …, "scale": …}, …]`, keys sorted, as the `loras` chunk.
    static func json(_ loras: [LoRARecord]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(loras)) ?? Data("[]".utf8), as: UTF8.self)
    }

    static func number(_ value: Float) -> String { number(Double(value)) }
    static func number(_ value: Double) -> String { String(format: "%g", value) }
}
