import FluxImages
import Foundation
import Hummingbird

/// The text fields of `POST /v1/images/edits` (multipart/form-data): OpenAI's (those that don't change the image
/// are accepted and ignored, as `/v1/images/generations` does) plus ours. The files are the parts `image` (or
/// `image[]`, as OpenAI's SDKs name the items of a list) and `mask`.
struct ImageEditRequest: StrictDecodable, Codable {
    let prompt: String
    let model: String?
    let n: Int?
    let size: String?
    let responseFormat: String?
    let outputFormat: String?
    let outputCompression: Int?
    let quality: String?
    let user: String?
    let background: String?
    let inputFidelity: String?
    let moderation: String?
    // Ours.
    let seed: UInt64?
    let steps: Int?
    let guidance: Double?
    let strength: Double?
    let negativePrompt: String?
    let trueCFGScale: Double?
    let cacheThreshold: Double?
    /// In multipart, one text part holding the JSON array (`[{"name": "…", "scale": 0.8}]`).
    let loras: [LoRAChoice.Requested]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case prompt, model, n, size, responseFormat = "response_format", outputFormat = "output_format"
        case outputCompression = "output_compression", quality, user, background, inputFidelity = "input_fidelity"
        case moderation, seed, steps, guidance, strength, negativePrompt = "negative_prompt"
        case trueCFGScale = "true_cfg_scale", cacheThreshold = "cache_threshold", loras
    }

    static let fields: [String: JSONField] = [
        "prompt": .string, "model": .string, "n": .integer, "size": .string, "response_format": .string,
        "output_format": .string, "output_compression": .integer, "quality": .string, "user": .string,
        "background": .string, "input_fidelity": .string, "moderation": .string, "seed": .seed, "steps": .integer,
        "guidance": .number, "strength": .number, "negative_prompt": .string, "true_cfg_scale": .number,
        "cache_threshold": .number, "loras": .loras,
    ]

    func parameters(_ runtime: ServerRuntime, upload: EditUpload) throws -> JobParameters {
        try ResponseFormat.checkOutputFormat(outputFormat)
        return try JobParameters.resolve(
            prompt: prompt, n: n, size: size, steps: steps, guidance: guidance, seed: seed,
            cacheThreshold: cacheThreshold, negativePrompt: negativePrompt, trueCFGScale: trueCFGScale,
            strength: strength, edit: upload, variant: runtime.generator.variant, loras: loras,
            catalog: runtime.loras, imageLimits: runtime.config.imageLimits, defaults: runtime.generator.defaults,
            limits: runtime.config.limits)
    }
}

/// The image files of a multipart edit request.
enum EditFiles {
    /// Part names that hold files, never text fields.
    static let names: Set<String> = ["image", "image[]", "mask"]

    /// The upload in `form`: exactly one image (every pipeline here edits one image; Kontext's multi-reference
    /// editing is not implemented, and stitching several into one would be a different request than the client
    /// meant), at most one mask. 400 naming the part otherwise.
    static func upload(_ form: MultipartForm, maskRule: DecodedImage.MaskRule) throws -> EditUpload {
        let images = form.files(named: ["image", "image[]"]), masks = form.files(named: ["mask"])
        guard !images.isEmpty else {
            throw APIError(.badRequest, "missing_field", "an image file part ('image') is required", param: "image")
        }
        guard images.count == 1 else {
            throw APIError(.badRequest, "too_many_images", "one image per edit: this server edits a single image "
                           + "(got \(images.count))", param: "image")
        }
        guard masks.count <= 1 else {
            throw APIError(.badRequest, "too_many_masks", "at most one mask (got \(masks.count))", param: "mask")
        }
        return EditUpload(image: images[0].bytes, mask: masks.first?.bytes, maskRule: maskRule)
    }

    /// What tells a retry under an `Idempotency-Key` from a different request: the fields and the files' digests.
    static func fingerprint(_ fields: some Encodable, _ upload: EditUpload) throws -> String {
        try JobStore.json(fields) + " image:" + EditUpload.sha256(upload.image)
            + (upload.mask.map { " mask:" + EditUpload.sha256($0) } ?? "")
    }
}

/// `POST /v1/images/edits` (OpenAI Images API, multipart/form-data): the request waits for its images, like
/// `/v1/images/generations`. OpenAI's mask rule: fully transparent pixels of the mask are edited, and a mask
/// without alpha is refused. On a Kontext model the prompt is an instruction; on a Fill model a mask is required;
/// otherwise img2img, or inpainting with a mask.
struct ImageEditsAPI {
    let runtime: ServerRuntime
    let images: ImagesAPI

    func register(authenticated: RouterGroup<FluxRequestContext>, routes: RouteTable) {
        let runtime = self.runtime, images = self.images
        routes.add(authenticated, .post, "/v1/images/edits", isPublic: false) { request, context in
            guard MultipartForm.isMultipart(request) else {
                throw APIError(.unsupportedMediaType, "unsupported_media_type",
                               "/v1/images/edits takes multipart/form-data (image and mask as file parts)")
            }
            let form = try await MultipartForm.read(request, limit: runtime.config.maxUploadBytes)
            let fields = try form.jsonObject(fields: ImageEditRequest.fields, fileFields: EditFiles.names)
            let submitted = try JSONBody.decode(ImageEditRequest.self, from: fields)
            let format = try ResponseFormat(submitted.responseFormat)
            let upload = try EditFiles.upload(form, maskRule: .transparentRepaints)
            let parameters = try submitted.parameters(runtime, upload: upload)
            return try await images.respond(parameters, upload: upload, format: format,
                                            fingerprint: try EditFiles.fingerprint(submitted, upload),
                                            request: request, context: context)
        }
    }
}
