import FluxCore

/// diffusers `ResnetBlock2D` as the VAE uses it (no time embedding, output scale 1; LDM/BFL `ResnetBlock`):
/// `shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))`, the shortcut a 1×1 conv when the channel count changes.
struct ResnetBlock2D: Sendable {
    let norm1: GroupNorm
    let conv1: Conv2d
    let norm2: GroupNorm
    let conv2: Conv2d
    let convShortcut: Conv2d?

    init(_ w: ModuleWeights, in inChannels: Int, out outChannels: Int, groups: Int) throws {
        norm1 = try GroupNorm(w.scope("norm1"), channels: inChannels, groups: groups)
        conv1 = try Conv2d(w.scope("conv1"), in: inChannels, out: outChannels, kernel: 3)
        norm2 = try GroupNorm(w.scope("norm2"), channels: outChannels, groups: groups)
        conv2 = try Conv2d(w.scope("conv2"), in: outChannels, out: outChannels, kernel: 3)
        convShortcut = inChannels == outChannels ? nil
            : try Conv2d(w.scope("conv_shortcut"), in: inChannels, out: outChannels, kernel: 1)
    }

    /// x (B, Cin, H, W) → (B, Cout, H, W).
    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        var h = try conv1(try norm1(x, on: b, activation: .silu), on: b)
        // Dropout sits here in diffusers; it is the identity at inference.
        h = try conv2(try norm2(h, on: b, activation: .silu), on: b)
        let shortcut = try convShortcut.map { try $0(x, on: b) } ?? x
        return try b.add(shortcut, h)
    }
}

/// diffusers `Downsample2D(use_conv=True, padding=0)`: zero-pad one pixel at the bottom and right only, then a 3×3
/// convolution at stride 2. (B, C, H, W) → (B, C, ⌊(H − 2)/2⌋ + 1, ⌊(W − 2)/2⌋ + 1); H and W must be at least 2.
struct Downsample2D: Sendable {
    let conv: Conv2d

    static let padding = Padding2D(top: 0, bottom: 1, left: 0, right: 1)

    init(_ w: ModuleWeights, channels: Int) throws {
        conv = try Conv2d(w.scope("conv"), in: channels, out: channels, kernel: 3, stride: 2, padding: Self.padding)
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor { try conv(x, on: b) }

    /// Output size of one side of `size` pixels.
    static func outputSize(_ size: Int) -> Int { (size - 2) / 2 + 1 }
}

/// diffusers `Upsample2D(use_conv=True)`: nearest-neighbour ×2, then a 3×3 convolution.
/// (B, C, H, W) → (B, C, 2H, 2W).
struct Upsample2D: Sendable {
    let conv: Conv2d

    init(_ w: ModuleWeights, channels: Int) throws {
        conv = try Conv2d(w.scope("conv"), in: channels, out: channels, kernel: 3)
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        try conv(try b.upsampleNearest(x, factor: 2), on: b)
    }
}
