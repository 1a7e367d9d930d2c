import FluxCore

/// What an input image adds to the denoising loop, prepared once per request as the diffusers pipelines'
/// `prepare_latents` / `prepare_mask_latents` do, then applied at every step. Latents are packed, B rows.
///
/// - img2img: the start is the image's latents noised to σ₀ of the trimmed schedule.
/// - inpainting: the same start; after each step the unmasked latents are put back, noised to the next σ.
/// - Fill: the masked image's latents and the mask (each 2×2 latent patch carrying its f×f pixel mask values)
///   ride along as extra input channels.
/// - Kontext: the image's latent tokens are appended to the sequence with ids (1, row, column); the prediction
///   is cut back to the generated tokens.
struct EditConditioning {
    let mode: GenerationMode
    /// img2img / inpainting / Fill with strength < 1: the image's packed latents (B, tokens, 4C).
    private(set) var imageLatents: Tensor?
    /// Inpainting: the binarised mask at latent resolution, packed like the latents, and 1 − it.
    private(set) var keepMask: (repaint: Tensor, keep: Tensor)?
    /// Fill: masked-image latents (4C) then the packed pixel mask (4f²), per token: (B, tokens, 4C + 4f²).
    private(set) var fillChannels: Tensor?
    /// Kontext: the reference image's packed latents (B, reference tokens, 4C) and their position ids.
    private(set) var reference: (tokens: Tensor, ids: [[Double]])?

    /// Encodes what `mode` needs from `request.image` / `request.mask` with `pipeline`'s VAE. `schedule` is the one
    /// the loop runs (σ₀ = 1 multiplies the image's latents by 0: only inpainting, which blends them back in, then
    /// needs them).
    init(mode: GenerationMode, request r: GenerationRequest, geometry g: LatentGeometry, schedule: FlowMatchSchedule,
         pipeline p: FluxPipeline) throws {
        self.mode = mode
        let b = p.backend, batch = r.batch
        guard mode != .textToImage, let image = r.image else { return }
        let pixels = Self.normalized(image)
        if mode.usesStrength && (schedule.sigmas[0] != 1 || mode == .inpainting) {
            imageLatents = try p.encodeImage(pixels, shape: image.shape, geometry: g, batch: batch)
        }
        switch mode {
        case .inpainting:
            let mask = try Self.binarized(r.mask, name: "mask_image")
            let latent = Self.nearest(mask, shape: mask.shape, to: (g.latentHeight, g.latentWidth))
            // (N, 1, h, w) → the same plane for each of the C latent channels → packed like the latents.
            let planes = HostTensor(Self.repeatChannels(latent, count: g.latentChannels),
                                    shape: [latent.shape[0], g.latentChannels, g.latentHeight, g.latentWidth])
            let repaint = try p.repeatBatch(try g.pack(try b.upload(planes), on: b), to: batch)
            keepMask = (repaint, try b.scaleShift(repaint, scale: -1, shift: 1))
        case .fill:
            let mask = try Self.binarized(r.mask, name: "mask_image")
            let values = mask.floats(), maskedPixels = zip(pixels.floats(), Self.broadcastPlanes(values, to: image.shape))
                .map { $0 * (1 - $1) }
            let masked = try p.encodeImage(HostTensor(maskedPixels, shape: image.shape), shape: image.shape,
                                           geometry: g, batch: batch)
            let packedMask = try p.repeatBatch(try Self.pixelMaskTokens(mask, geometry: g, on: b), to: batch)
            fillChannels = try b.concat([masked, packedMask], axis: 2)
        case .kontext:
            let own = try p.geometry(width: image.shape[3], height: image.shape[2])
            let tokens = try p.encodeImage(pixels, shape: image.shape, geometry: own, batch: batch)
            reference = (tokens, own.imageIds.map { [1] + $0.dropFirst() })
        case .textToImage, .imageToImage:
            break
        }
    }

    /// The first latents: the noise itself, or the image's latents noised to σ₀ (`scale_noise`).
    func start(noise: Tensor, schedule: FlowMatchSchedule, on b: any Backend) throws -> Tensor {
        guard let imageLatents else { return noise }
        return try schedule.scaleNoise(imageLatents, noise: noise, at: 0, on: b)
    }

    /// What the transformer reads at a step: the latents, with Fill's channels or Kontext's tokens appended.
    func modelInput(_ latents: Tensor, on b: any Backend) throws -> Tensor {
        if let fillChannels { return try b.concat([latents, fillChannels], axis: 2) }
        if let reference { return try b.concat([latents, reference.tokens], axis: 1) }
        return latents
    }

    /// The prediction for the generated tokens (Kontext predicts the reference tokens too).
    func generated(_ velocity: Tensor, tokens: Int, on b: any Backend) throws -> Tensor {
        reference == nil ? velocity : try b.slice(velocity, axis: 1, start: 0, count: tokens)
    }

    /// Inpainting, after step `i`: `(1 − mask) · image + mask · latents`, the image noised to σᵢ₊₁ except after the
    /// last step (diffusers `FluxInpaintPipeline`'s loop, in its order).
    func afterStep(_ i: Int, latents: Tensor, noise: Tensor, schedule: FlowMatchSchedule, on b: any Backend) throws
        -> Tensor
    {
        guard let keepMask, let imageLatents else { return latents }
        let proper = i < schedule.steps - 1
            ? try schedule.scaleNoise(imageLatents, noise: noise, at: i + 1, on: b) : imageLatents
        return try b.add(try b.multiply(keepMask.keep, proper), try b.multiply(keepMask.repaint, latents))
    }

    // MARK: Host-side pixels (VaeImageProcessor)

    /// `2x − 1` (`VaeImageProcessor.normalize`), f32.
    static func normalized(_ image: HostTensor) -> HostTensor {
        HostTensor(image.floats().map { 2 * $0 - 1 }, shape: image.shape)
    }

    /// The mask processor's binarisation: ≥ 0.5 → 1, else 0.
    static func binarized(_ mask: HostTensor?, name: String) throws -> HostTensor {
        guard let mask else { throw ModelError.missingInput(name: name, expected: "(N, 1, H, W) in 0…1") }
        return HostTensor(mask.floats().map { $0 < 0.5 ? 0 : 1 }, shape: mask.shape)
    }

    /// torch `F.interpolate(mask, size: (h, w))` (mode "nearest": source index ⌊i · in/out⌋, scale in f32) of
    /// (N, 1, H, W).
    static func nearest(_ mask: HostTensor, shape: [Int], to size: (height: Int, width: Int)) -> HostTensor {
        let (n, height, width) = (shape[0], shape[2], shape[3]), values = mask.floats()
        let rowScale = Float(height) / Float(size.height), columnScale = Float(width) / Float(size.width)
        var out = [Float]()
        out.reserveCapacity(n * size.height * size.width)
        for image in 0..<n {
            for y in 0..<size.height {
                let sy = min(Int((Float(y) * rowScale).rounded(.down)), height - 1)
                for x in 0..<size.width {
                    let sx = min(Int((Float(x) * columnScale).rounded(.down)), width - 1)
                    out.append(values[(image * height + sy) * width + sx])
                }
            }
        }
        return HostTensor(out, shape: [n, 1, size.height, size.width])
    }

    /// (N, 1, h, w) → (N, count, h, w): the plane repeated (`mask.repeat(1, C, 1, 1)`).
    static func repeatChannels(_ planes: HostTensor, count: Int) -> [Float] {
        let values = planes.floats(), plane = planes.shape[2] * planes.shape[3]
        return (0..<planes.shape[0]).flatMap { n in
            (0..<count).flatMap { _ in values[(n * plane)..<((n + 1) * plane)] }
        }
    }

    /// A one-channel mask (N, 1, H, W) spread over `shape`'s channels (N, C, H, W).
    static func broadcastPlanes(_ values: [Float], to shape: [Int]) -> [Float] {
        repeatChannels(HostTensor(values, shape: [shape[0], 1, shape[2], shape[3]]), count: shape[1])
    }

    /// Fill's mask: (N, 1, H, W) → (N, h, f, w, f) → (N, f, f, h, w) → (N, f², h, w) → packed (N, tokens, 4f²).
    static func pixelMaskTokens(_ mask: HostTensor, geometry g: LatentGeometry, on b: any Backend) throws -> Tensor {
        let (n, f, h, w) = (mask.shape[0], g.vaeScaleFactor, g.latentHeight, g.latentWidth)
        let split = try b.upload(try mask.reshaped([n, h, f, w, f]))
        let planes = try b.permute(split, [0, 2, 4, 1, 3]).reshaped([n, f * f, h, w])
        let asLatents = try LatentGeometry(height: g.height, width: g.width, vaeScaleFactor: g.vaeScaleFactor,
                                           latentChannels: f * f)
        return try asLatents.pack(planes, on: b)
    }
}
