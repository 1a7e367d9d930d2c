import FluxCore

/// The tensors the pipeline takes from an image: the picture in [0, 1] (the VAE encoder's input before its
/// `2x − 1`) and the inpainting mask, 1 = repaint.
extension DecodedImage {
    /// (1, 3, H, W) f32 in [0, 1], RGB planes. Transparent pixels are composited over `background` (white by
    /// default: a transparent PNG looks white in a browser and in A1111/ComfyUI's uploads), in f32 without rounding:
    /// `(c·a + bg·(255 − a)) / 255²`.
    public func imageTensor(over background: Background = .white) -> HostTensor {
        let plane = width * height
        let bg = background.value
        var values = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            let alpha = Float(pixels[4 * i + 3])
            for c in 0..<3 {
                values[c * plane + i] = (Float(pixels[4 * i + c]) * alpha + bg * (255 - alpha)) / (255 * 255)
            }
        }
        return HostTensor(values, shape: [1, 3, height, width])
    }

    /// How a mask image says which pixels to repaint.
    public enum MaskRule: Sendable, Hashable {
        /// White repaints, black keeps (A1111, ComfyUI, diffusers' inpaint pipelines; the CLI's `--mask`): the ITU-R
        /// 601-2 luma of the pixel composited over black, `L = (299 R + 587 G + 114 B) / 1000` as Pillow's
        /// `convert("L")`, divided by 255 (kept in f32, not rounded to 8 bits as Pillow's is: ≤ 0.5/255 apart).
        /// A transparent pixel therefore keeps.
        case whiteRepaints
        /// Transparent repaints (OpenAI's /v1/images/edits: "fully transparent areas indicate where the image should
        /// be edited"): `1 − alpha / 255`, colour ignored. A mask without alpha (`hasAlpha` false) is all 0 —
        /// nothing to edit — and a caller should refuse it, as OpenAI does.
        case transparentRepaints
    }

    /// (1, 1, H, W) f32 in [0, 1], 1 = repaint, by `rule`.
    public func maskTensor(rule: MaskRule) -> HostTensor {
        let plane = width * height
        var values = [Float](repeating: 0, count: plane)
        for i in 0..<plane {
            let alpha = Float(pixels[4 * i + 3])
            switch rule {
            case .whiteRepaints:
                let luma = (299 * Float(pixels[4 * i]) + 587 * Float(pixels[4 * i + 1])
                            + 114 * Float(pixels[4 * i + 2])) / 1000
                values[i] = min(1, luma * alpha / (255 * 255))
            case .transparentRepaints:
                values[i] = 1 - alpha / 255
            }
        }
        return HostTensor(values, shape: [1, 1, height, width])
    }
}
