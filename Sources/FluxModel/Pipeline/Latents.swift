import FluxCore
import Foundation

/// The latent image layout FLUX works in: VAE latents (B, C, h, w) packed into 2×2 patches (B, (h/2)(w/2), 4C), and
/// the matching position ids (0, row, column) per patch (diffusers `FluxPipeline._pack_latents`,
/// `_prepare_latent_image_ids`; BFL `sampling.prepare`).
public struct LatentGeometry: Sendable, Equatable {
    /// Image size in pixels.
    public let height: Int, width: Int
    /// VAE downsampling factor: 2^(number of VAE blocks − 1), 8 for FLUX.
    public let vaeScaleFactor: Int
    /// Latent channels of the VAE (16 for FLUX).
    public let latentChannels: Int

    /// Checks that the size splits into whole 2×2 latent patches (multiples of 16 pixels for FLUX).
    public init(height: Int, width: Int, vaeScaleFactor: Int, latentChannels: Int) throws {
        let multiple = vaeScaleFactor * 2
        guard height > 0, width > 0, height % multiple == 0, width % multiple == 0 else {
            throw ModelError.invalidConfig(source: "image size", reason:
                "\(width)×\(height): width and height must be positive multiples of \(multiple)")
        }
        (self.height, self.width, self.vaeScaleFactor, self.latentChannels) =
            (height, width, vaeScaleFactor, latentChannels)
    }

    /// Latent height and width (h, w) = (H, W) / vaeScaleFactor.
    public var latentHeight: Int { height / vaeScaleFactor }
    public var latentWidth: Int { width / vaeScaleFactor }
    /// Image tokens the transformer sees: (h/2)(w/2).
    public var imageTokens: Int { (latentHeight / 2) * (latentWidth / 2) }
    /// Channels per token: 4 · latent channels (64 for FLUX).
    public var packedChannels: Int { 4 * latentChannels }

    /// (B, C, h, w) → (B, (h/2)(w/2), 4C): token (i, j) holds channels c of pixels (2i + di, 2j + dj) in order c, di, dj.
    public func pack(_ latents: Tensor, on b: any Backend) throws -> Tensor {
        let batch = latents.shape[0], (h, w, c) = (latentHeight, latentWidth, latentChannels)
        let split = try latents.reshaped([batch, c, h / 2, 2, w / 2, 2])
        return try b.permute(split, [0, 2, 4, 1, 3, 5]).reshaped([batch, imageTokens, packedChannels])
    }

    /// The inverse of `pack`: (B, (h/2)(w/2), 4C) → (B, C, h, w).
    public func unpack(_ packed: Tensor, on b: any Backend) throws -> Tensor {
        let batch = packed.shape[0], (h, w, c) = (latentHeight, latentWidth, latentChannels)
        let split = try packed.reshaped([batch, h / 2, w / 2, c, 2, 2])
        return try b.permute(split, [0, 3, 1, 4, 2, 5]).reshaped([batch, c, h, w])
    }

    /// Position ids of the image tokens, row-major: (0, row, column).
    public var imageIds: [[Double]] {
        (0..<(latentHeight / 2)).flatMap { row in (0..<(latentWidth / 2)).map { [0, Double(row), Double($0)] } }
    }

    /// Position ids of `count` text tokens: all zero, as the reference.
    public static func textIds(count: Int, axes: Int = 3) -> [[Double]] {
        Array(repeating: Array(repeating: 0, count: axes), count: count)
    }
}

/// Reproducible standard-normal noise from a 64-bit seed (SplitMix64 → Box–Muller in f64), the same on every machine
/// and backend. It does not reproduce torch's generator; diffusers parity tests pass the initial latents explicitly.
public struct GaussianNoise: Sendable {
    private var stream: SplitMix64

    public init(seed: UInt64) { stream = SplitMix64(seed: seed) }

    /// Uniform in (0, 1], 53 bits.
    private mutating func uniform() -> Double { (Double(stream.next() >> 11) + 1) / 9_007_199_254_740_992 }

    public mutating func sample(_ count: Int) -> [Float] {
        var out = [Float]()
        out.reserveCapacity(count + 1)
        while out.count < count {
            let radius = (-2 * log(uniform())).squareRoot(), angle = 2 * Double.pi * uniform()
            out.append(Float(radius * cos(angle)))
            out.append(Float(radius * sin(angle)))
        }
        return Array(out.prefix(count))
    }
}
