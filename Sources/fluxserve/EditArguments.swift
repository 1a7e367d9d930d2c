import ArgumentParser
import FluxCore
import FluxImages
import FluxModel
import Foundation

/// `generate`'s image inputs and true CFG: `--image`, `--mask`, `--strength`, `--outpaint`, `--negative-prompt`,
/// `--true-cfg-scale`. Files are read and decoded before any weight loads, so a bad file costs a second.
struct EditOptions: ParsableArguments {
    @Option(help: ArgumentHelp("An image to start from (PNG, JPEG or WebP).", discussion:
        "img2img on base models, instruction editing on Kontext models (resized to Kontext's preferred resolution "
        + "nearest its aspect), filling with --mask on Fill models. Without --width/--height the output has the "
        + "image's size (floored to a multiple of 16, scaled down to 1 megapixel; Kontext: its preferred size)."))
    var image: String?

    @Option(help: "Where to repaint: a mask image the size of --image, white = repaint, black = keep (as A1111 and ComfyUI).")
    var mask: String?

    @Option(parsing: .unconditional,
            help: "How much of the schedule to run from the noised image, (0, 1] (default 0.6; Fill 1).")
    var strength: Double?

    @Option(help: "LEFT,TOP,RIGHT,BOTTOM: pixels of border to add around --image and paint in (Fill or base models).")
    var outpaint: String?

    @Option(help: "Negative prompt for true classifier-free guidance; needs --true-cfg-scale above 1.")
    var negativePrompt: String?

    @Option(parsing: .unconditional,
            help: "True CFG scale, 1…100 (1 = off). Each step runs the model twice, with the prompt and the negative prompt.")
    var trueCfgScale: Float = 1

    /// The decoded inputs, ready for a `GenerationRequest`.
    struct Loaded {
        let prepared: EditImages.Prepared
        let record: ImageMetadata.EditRecord
    }

    /// Reads and prepares `--image` (and `--mask`, `--outpaint`) for a model of `variant`; nil without `--image`.
    /// `size` is `--width`/`--height` when both are given.
    func load(variant: ModelVariant, size: (width: Int, height: Int)?, sideMultiple: Int) throws -> Loaded? {
        guard let image else {
            if mask != nil { throw ValidationError("--mask needs --image: the mask says where to repaint it") }
            if outpaint != nil { throw ValidationError("--outpaint needs --image: it adds a border around it") }
            if strength != nil { throw ValidationError("--strength applies to --image edits") }
            return nil
        }
        let outpaint = try self.outpaint.map { text in
            do { return try Outpaint(parsing: text) } catch { throw ValidationError("--outpaint \(error)") }
        }
        let (imageFile, imageHash) = try Self.read(image, option: "--image")
        let maskFile = try mask.map { try Self.read($0, option: "--mask") }
        let mode = try GenerationMode.of(variant: variant, image: true, mask: maskFile != nil || outpaint != nil)
        if strength != nil && !mode.usesStrength {
            throw ValidationError("--strength does not apply to \(mode.rawValue) (\(variant.pipelineClass) model)")
        }
        let edit = EditImages(image: imageFile, mask: maskFile?.image, maskRule: .whiteRepaints, outpaint: outpaint)
        let prepared: EditImages.Prepared
        do { prepared = try edit.prepare(for: variant, size: size, sideMultiple: sideMultiple) } catch {
            throw ValidationError("--image \(image): \(error)")
        }
        return Loaded(prepared: prepared, record: ImageMetadata.EditRecord(
            mode: mode, imageSHA256: imageHash, maskSHA256: maskFile?.hash,
            maskRule: maskFile == nil ? nil : "white", outpaint: outpaint))
    }

    /// An image file decoded, and the SHA-256 of its bytes (recorded in the output's metadata).
    private static func read(_ path: String, option: String) throws -> (image: DecodedImage, hash: String) {
        let limits = ImageLimits()
        do {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
            if let size { try limits.checkBytes(size) }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("\(option) \(path): cannot be read (missing, a folder, or not readable)")
            }
            let bytes = [UInt8](data)
            var sha = SHA256()
            sha.update(bytes)
            return (try ImageDecoder.decode(bytes, limits: limits), sha.finalizeHex())
        } catch let error as ImageError {
            throw ValidationError("\(option) \(path): \(error)")
        }
    }
}
