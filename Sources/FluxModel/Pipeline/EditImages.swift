import FluxCore
import FluxImages

/// Padding added around an image to outpaint: pixels on each side, repainted (mask 1) by Fill or inpainting.
public struct Outpaint: Sendable, Hashable {
    public var left: Int, top: Int, right: Int, bottom: Int

    public init(left: Int, top: Int, right: Int, bottom: Int) {
        (self.left, self.top, self.right, self.bottom) = (left, top, right, bottom)
    }

    /// "LEFT,TOP,RIGHT,BOTTOM" in pixels, each 0…4096, not all 0.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let values = parts as? [Int], values.allSatisfy({ (0...4096).contains($0) }),
              values.contains(where: { $0 > 0 }) else {
            throw EditImageError.badOutpaint(text)
        }
        self.init(left: values[0], top: values[1], right: values[2], bottom: values[3])
    }
}

/// Why decoded input images could not become a pipeline's inputs.
public enum EditImageError: Error, CustomStringConvertible, Equatable, Sendable {
    case badOutpaint(String)
    case outpaintNeedsMask(ModelVariant)
    case maskSize(mask: [Int], image: [Int])
    case maskWithoutAlpha
    case imageTooSmall(width: Int, height: Int, multiple: Int)

    public var description: String {
        switch self {
        case let .badOutpaint(text):
            "outpaint \"\(text)\": give LEFT,TOP,RIGHT,BOTTOM in pixels, each 0…4096, not all 0"
        case let .outpaintNeedsMask(variant):
            "outpainting repaints the added border, which a \(variant.pipelineClass) model cannot; use a Fill or base model"
        case let .maskSize(mask, image):
            "the mask is \(mask[0])×\(mask[1]) but the image is \(image[0])×\(image[1]); they must be the same size"
        case .maskWithoutAlpha:
            "the mask has no alpha channel: fully transparent pixels mark where to edit"
        case let .imageTooSmall(width, height, multiple):
            "the image is \(width)×\(height); each side must be at least \(multiple) pixels"
        }
    }
}

/// Decoded input images → what `GenerationRequest` takes (`image`, `mask`, and the output size), as diffusers'
/// `VaeImageProcessor` prepares PIL images: resized with Lanczos to the output size (the mask too, before the
/// pipeline binarises it at 0.5); for Kontext, the reference resized to the preferred resolution nearest its aspect
/// (`_auto_resize`), whatever the output size. Shared by `fluxserve generate` and the service.
public struct EditImages: Sendable {
    public var image: DecodedImage
    public var mask: DecodedImage?
    /// How `mask` marks the region to repaint (white on the command line, transparent on OpenAI's API).
    public var maskRule: DecodedImage.MaskRule
    public var outpaint: Outpaint?

    public init(image: DecodedImage, mask: DecodedImage? = nil, maskRule: DecodedImage.MaskRule = .whiteRepaints,
                outpaint: Outpaint? = nil) {
        (self.image, self.mask, self.maskRule, self.outpaint) = (image, mask, maskRule, outpaint)
    }

    /// The prepared inputs: `image` (1, 3, H, W) and `mask` (1, 1, H, W) in 0…1, and the output size.
    public struct Prepared: Sendable {
        public let image: HostTensor
        public let mask: HostTensor?
        public let width: Int
        public let height: Int
    }

    /// - `size`: the output size asked for; nil = Kontext's preferred resolution nearest the image's aspect, or the
    ///   (outpainted) image's size floored to `sideMultiple`, scaled down to `maxPixels` keeping its aspect.
    public func prepare(for variant: ModelVariant, size: (width: Int, height: Int)?, sideMultiple: Int = 16,
                        maxPixels: Int = 1024 * 1024, limits: ImageLimits = ImageLimits()) throws -> Prepared {
        if maskRule == .transparentRepaints, let mask, !mask.hasAlpha { throw EditImageError.maskWithoutAlpha }
        if let mask, mask.width != image.width || mask.height != image.height {
            throw EditImageError.maskSize(mask: [mask.width, mask.height], image: [image.width, image.height])
        }
        var canvas = image
        var repaint = mask.map { Self.whiteMask($0.maskTensor(rule: maskRule), width: $0.width, height: $0.height) }
        if let outpaint {
            guard variant != .kontext else { throw EditImageError.outpaintNeedsMask(variant) }
            canvas = try Self.padded(image, outpaint, fill: [128, 128, 128, 255], limits: limits)
            let keep = repaint ?? Self.whiteMask(HostTensor([Float](repeating: 0, count: image.width * image.height),
                                                            shape: [1, 1, image.height, image.width]),
                                                 width: image.width, height: image.height)
            repaint = try Self.padded(keep, outpaint, fill: [255, 255, 255, 255], limits: limits)
        }
        let (width, height) = try size ?? outputSize(canvas, variant: variant, multiple: sideMultiple,
                                                      maxPixels: maxPixels)
        let reference: DecodedImage
        if variant == .kontext && mask == nil {
            let preferred = try KontextResolutions.nearest(canvas, multiple: sideMultiple)
            reference = try canvas.resized(width: preferred.width, height: preferred.height, limits: limits)
        } else {
            reference = try canvas.resized(width: width, height: height, limits: limits)
        }
        let maskTensor = try repaint.map {
            try $0.resized(width: width, height: height, limits: limits).maskTensor(rule: .whiteRepaints)
        }
        return Prepared(image: reference.imageTensor(), mask: maskTensor, width: width, height: height)
    }

    /// The output size when none is asked for.
    private func outputSize(_ canvas: DecodedImage, variant: ModelVariant, multiple: Int, maxPixels: Int) throws
        -> (width: Int, height: Int)
    {
        if variant == .kontext && mask == nil {
            let preferred = try KontextResolutions.nearest(canvas, multiple: multiple)
            return (preferred.width, preferred.height)
        }
        var (w, h) = (Double(canvas.width), Double(canvas.height))
        if w * h > Double(maxPixels) {
            let scale = (Double(maxPixels) / (w * h)).squareRoot()
            (w, h) = (w * scale, h * scale)
        }
        let width = Int(w) / multiple * multiple, height = Int(h) / multiple * multiple
        guard width > 0, height > 0 else {
            throw EditImageError.imageTooSmall(width: canvas.width, height: canvas.height, multiple: multiple)
        }
        return (width, height)
    }

    /// A (1, 1, H, W) mask in 0…1 as an opaque grey image, white = repaint (the one form resizing and padding use).
    static func whiteMask(_ mask: HostTensor, width: Int, height: Int) -> DecodedImage {
        var pixels = [UInt8](repeating: 255, count: width * height * 4)
        for (i, value) in mask.floats().enumerated() {
            let level = UInt8((min(max(value, 0), 1) * 255).rounded())
            (pixels[4 * i], pixels[4 * i + 1], pixels[4 * i + 2]) = (level, level, level)
        }
        return DecodedImage(width: width, height: height, pixels: pixels, hasAlpha: false, format: .png)
    }

    /// `image` on a larger canvas of `fill` (RGBA), placed `outpaint.left`, `outpaint.top` from its corner.
    static func padded(_ image: DecodedImage, _ outpaint: Outpaint, fill: [UInt8], limits: ImageLimits) throws
        -> DecodedImage
    {
        let width = image.width + outpaint.left + outpaint.right, height = image.height + outpaint.top + outpaint.bottom
        try limits.checkDimensions(width: width, height: height)
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        for i in 0..<(width * height) { pixels.replaceSubrange((4 * i)..<(4 * i + 4), with: fill) }
        for y in 0..<image.height {
            let source = y * image.width * 4, target = ((y + outpaint.top) * width + outpaint.left) * 4
            pixels.replaceSubrange(target..<(target + image.width * 4),
                                   with: image.pixels[source..<(source + image.width * 4)])
        }
        return DecodedImage(width: width, height: height, pixels: pixels, hasAlpha: image.hasAlpha,
                            format: image.format)
    }
}

/// FLUX.1 Kontext's preferred resolutions (diffusers `PREFERRED_KONTEXT_RESOLUTIONS`), as (width, height).
public enum KontextResolutions {
    public static let preferred: [(width: Int, height: Int)] = [
        (672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184), (944, 1104),
        (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752), (1456, 720), (1504, 688),
        (1568, 672),
    ]

    /// The preferred resolution for an input image: its sides floored to `multiple` first, as diffusers'
    /// `get_default_height_width` does before `_auto_resize` compares aspects.
    static func nearest(_ image: DecodedImage, multiple: Int) throws -> (width: Int, height: Int) {
        let width = image.width / multiple * multiple, height = image.height / multiple * multiple
        guard width > 0, height > 0 else {
            throw EditImageError.imageTooSmall(width: image.width, height: image.height, multiple: multiple)
        }
        return nearest(width: width, height: height)
    }

    /// The preferred resolution whose aspect is nearest `width / height`; ties go to the smaller width, as Python's
    /// `min` over (difference, width, height) tuples in diffusers.
    public static func nearest(width: Int, height: Int) -> (width: Int, height: Int) {
        let aspect = Double(width) / Double(height)
        return preferred.min { a, b in
            let da = abs(aspect - Double(a.width) / Double(a.height)), db = abs(aspect - Double(b.width) / Double(b.height))
            return da != db ? da < db : (a.width, a.height) < (b.width, b.height)
        }!
    }
}
