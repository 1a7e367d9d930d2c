import FluxCore

/// `torch.nn.Conv2d` with square kernels: weight (Cout, Cin, k, k), bias (Cout), zero padding per side.
struct Conv2d: Sendable {
    let weight: Tensor
    let bias: Tensor
    let stride: Int
    let padding: Padding2D

    /// A `kernel`×`kernel` convolution; padding defaults to `kernel / 2` on every side (same size at stride 1).
    init(_ w: ModuleWeights, in inChannels: Int, out outChannels: Int, kernel: Int, stride: Int = 1,
         padding: Padding2D? = nil) throws {
        weight = try w.tensor("weight", shape: [outChannels, inChannels, kernel, kernel])
        bias = try w.tensor("bias", shape: [outChannels])
        self.stride = stride
        self.padding = padding ?? .all(kernel / 2)
    }

    /// x (B, Cin, H, W) → (B, Cout, Ho, Wo).
    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        try b.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// `torch.nn.GroupNorm` (affine), optionally followed by an activation in the same op.
struct GroupNorm: Sendable {
    let weight: Tensor
    let bias: Tensor
    let groups: Int
    let eps: Float

    init(_ w: ModuleWeights, channels: Int, groups: Int, eps: Float = AutoencoderConfig.normEps) throws {
        weight = try w.tensor("weight", shape: [channels])
        bias = try w.tensor("bias", shape: [channels])
        self.groups = groups
        self.eps = eps
    }

    /// x (B, C, ...) → the same shape.
    func callAsFunction(_ x: Tensor, on b: any Backend, activation: Activation = .identity) throws -> Tensor {
        try b.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, activation: activation)
    }
}

extension ModuleWeights {
    /// A `channels → channels` linear stored either as `nn.Linear` (C, C) (diffusers) or as a 1×1 `nn.Conv2d`
    /// (C, C, 1, 1) (LDM and BFL `AttnBlock`); both are the same numbers.
    func pointwiseLinear(_ name: String, channels c: Int) throws -> Linear {
        let w = scope(name)
        let stored = w.storedShape("weight")
        let weight = stored == [c, c, 1, 1]
            ? try w.tensor("weight", shape: [c, c, 1, 1]).reshaped([c, c])
            : try w.tensor("weight", shape: [c, c])
        return Linear(weight: weight, bias: try w.tensor("bias", shape: [c]))
    }
}
