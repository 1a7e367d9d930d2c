import FluxCore
import FluxImages
import FluxModel
import Foundation

/// The images of an edit request, as uploaded (multipart file parts, or base64 in JSON): one image, an optional mask,
/// and how the mask marks the region to edit. Decoded and prepared once at submission, so that anything wrong with
/// them is the client's 400 now rather than a failed job later; the worker decodes the stored bytes again.
struct EditUpload: Sendable {
    let image: [UInt8]
    let mask: [UInt8]?
    let maskRule: DecodedImage.MaskRule

    /// What the check learns: the output size (`size`, or from the image) and the job's `EditInput`.
    struct Checked: Sendable {
        let width: Int
        let height: Int
        let input: EditInput
    }

    /// Decodes both files within `limits` and prepares them as the worker will (`EditImages`), on a model of
    /// `variant`, at `size` (nil: from the image). Errors are 400s naming the part, or 501 for a missing library.
    func check(variant: ModelVariant, size: (width: Int, height: Int)?, limits: ImageLimits) throws -> Checked {
        let mode = try EditInput.mode(variant: variant, hasMask: mask != nil)
        let prepared = try Self.prepare(image: image, mask: mask, maskRule: maskRule, variant: variant, size: size,
                                        limits: limits)
        let input = EditInput(mode: mode, maskRule: maskRule, imageSHA256: Self.sha256(image),
                              maskSHA256: mask.map(Self.sha256), referenceWidth: prepared.image.shape[3],
                              referenceHeight: prepared.image.shape[2])
        return Checked(width: prepared.width, height: prepared.height, input: input)
    }

    /// Decodes and prepares stored or uploaded bytes: `image` (1, 3, H, W) and `mask` (1, 1, H, W) in 0…1.
    static func prepare(image: [UInt8], mask: [UInt8]?, maskRule: DecodedImage.MaskRule, variant: ModelVariant,
                        size: (width: Int, height: Int)?, limits: ImageLimits) throws -> EditImages.Prepared {
        let decodedImage = try decode(image, part: "image", limits: limits)
        let decodedMask = try mask.map { try decode($0, part: "mask", limits: limits) }
        let edit = EditImages(image: decodedImage, mask: decodedMask, maskRule: maskRule)
        do {
            return try edit.prepare(for: variant, size: size, limits: limits)
        } catch let error as EditImageError {
            throw apiError(error)
        } catch let error as ImageError {
            throw apiError(error, part: "image")
        }
    }

    static func decode(_ bytes: [UInt8], part: String, limits: ImageLimits) throws -> DecodedImage {
        do {
            return try ImageDecoder.decode(bytes, limits: limits)
        } catch let error as ImageError {
            throw apiError(error, part: part)
        }
    }

    /// A decoder error as the answer: 400 for what the client sent (naming the part and the decoder's reason, or the
    /// `ImageLimits` field it broke); 501 when this server lacks the library for the format — a server that cannot
    /// decode JPEG lacks the feature (retrying will not help, so not 503), and the request itself was fine (not 4xx).
    static func apiError(_ error: ImageError, part: String) -> APIError {
        switch error.reason {
        case .libraryMissing, .libraryTooOld:
            return APIError(.notImplemented, "image_library_missing",
                            "this server cannot decode the \(part): \(error.reason)", param: part)
        case .tooManyBytes, .badSide, .tooManyPixels:
            return APIError(.badRequest, "image_too_large", "\(part): \(error.reason)", param: part)
        default:
            return APIError(.badRequest, "invalid_image", "\(part): \(error.reason)", param: part)
        }
    }

    static func apiError(_ error: EditImageError) -> APIError {
        switch error {
        case .maskWithoutAlpha, .maskSize:
            return APIError(.badRequest, "invalid_mask", "mask: \(error)", param: "mask")
        default:
            return APIError(.badRequest, "invalid_image", "image: \(error)", param: "image")
        }
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalizeHex()
    }
}
