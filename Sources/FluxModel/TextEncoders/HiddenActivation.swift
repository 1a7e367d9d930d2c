import FluxCore

/// An MLP activation named as in transformers' `ACT2FN` (`hidden_act`, `dense_act_fn`), mapped onto the backend.
public enum HiddenActivation: Sendable, Equatable {
    /// A `Backend` activation, fused into the producing `linear` where there is one.
    case backend(Activation)
    /// max(x, 0): original T5's feed-forward. `Activation` has no ReLU, so it is composed (see `relu`).
    case relu

    /// The transformers names understood here.
    public static let supportedNames = "quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish, relu"

    public init?(transformersName name: String) {
        switch name {
        case "quick_gelu": self = .backend(.quickGelu)
        case "gelu": self = .backend(.gelu)
        // gelu_new, gelu_pytorch_tanh and gelu_fast are the same tanh formula written three ways.
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .backend(.geluTanh)
        case "silu", "swish": self = .backend(.silu)
        case "relu": self = .relu
        default: return nil
        }
    }

    /// `act(layer(x))`, fused into the linear when the backend has the activation.
    func linear(_ x: Tensor, _ layer: Linear, on b: any Backend) throws -> Tensor {
        switch self {
        case let .backend(activation): try layer(x, on: b, activation: activation)
        case .relu: try composedRelu(try layer(x, on: b), on: b)
        }
    }
}

/// ReLU from existing ops: `(x + x·s) / 2` with `s = x / √(x² + ε)` = sign(x), which is `rmsNorm` over rows of one
/// element. With ε = 1e-30 the sign is exact to rounding for |x| > 1e-15, and below that the result is off by less
/// than |x|. A `Backend` activation would do this in one pass.
func composedRelu(_ x: Tensor, on b: any Backend) throws -> Tensor {
    let sign = try b.rmsNorm(try x.reshaped([x.count, 1]), weight: nil, eps: 1e-30).reshaped(x.shape)
    return try b.scaleShift(try b.add(x, try b.multiply(x, sign)), scale: 0.5, shift: 0)
}
