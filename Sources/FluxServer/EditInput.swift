import FluxImages
import FluxModel
import Foundation

/// What an edit job keeps beside its `JobParameters` (in the job row's own columns, see `JobStore`): the pipeline it
/// runs, how its mask is read, the digests its PNGs record, and the size of the reference image the worker prepares.
/// The uploaded bytes themselves are files under `inputs/<job id>/` (`JobStore.inputURL`).
public struct EditInput: Sendable, Equatable {
    /// img2img, inpainting, Fill or Kontext; never text-to-image.
    public var mode: GenerationMode
    public var maskRule: DecodedImage.MaskRule
    /// Hex SHA-256 of the image and mask files as received.
    public var imageSHA256: String
    public var maskSHA256: String?
    /// The prepared reference image: the output size, except for Kontext (its preferred resolution nearest the
    /// image's aspect). Jobs batch only with equal reference sizes, as the batch's images are one tensor.
    public var referenceWidth: Int
    public var referenceHeight: Int
    /// Where the uploads are, relative to the data directory (`inputs/<job id>/image`, `…/mask`); set when the
    /// submission writes them (`JobStore.writeInputs`).
    public var imageFile = ""
    public var maskFile: String? = nil

    public var hasMask: Bool { maskSHA256 != nil }

    /// How a request names a mask rule (`mask_rule`), and how the store keeps it.
    static func maskRule(named name: String) -> DecodedImage.MaskRule? {
        switch name {
        case "white": .whiteRepaints
        case "transparent": .transparentRepaints
        default: nil
        }
    }

    static func name(of rule: DecodedImage.MaskRule) -> String { rule == .whiteRepaints ? "white" : "transparent" }

    /// The pipeline an edit runs on a model of `variant` (`GenerationMode.of`, as the pipeline chooses it),
    /// refusing at submission what that model cannot do: 400 naming `mask`.
    static func mode(variant: ModelVariant, hasMask: Bool) throws -> GenerationMode {
        do {
            return try GenerationMode.of(variant: variant, image: true, mask: hasMask)
        } catch {
            let code = error.kind == .maskNotSupported ? "mask_not_supported" : "mask_required"
            throw APIError(.badRequest, code, error.reason, param: "mask")
        }
    }

    /// `strength` only where the mode uses it (img2img, inpainting, Fill): 422 otherwise, rather than ignore it.
    /// (Any strength in (0, 1] leaves at least one step, as diffusers counts them, so no step check is needed.)
    static func checkStrength(_ strength: Double?, mode: GenerationMode) throws {
        guard strength != nil, !mode.usesStrength else { return }
        throw APIError.invalidValue("strength", "strength applies to img2img, inpainting and Fill; a "
                                    + "\(mode.rawValue) request takes none")
    }
}
