import FluxCore
import Foundation

/// One activation function on one value, in f32 (see `Activation` for the formulas).
@inline(__always) func activate(_ x: Float, _ kind: Activation) -> Float {
    switch kind {
    case .identity: x
    case .silu: x / (1 + exp(-x))
    case .geluTanh: 0.5 * x * (1 + tanh(0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)))
    case .gelu: 0.5 * x * (1 + erf(x * 0.707_106_781_186_547_5))
    case .quickGelu: x / (1 + exp(-1.702 * x))
    }
}

extension CPUBackend {
    public func uncheckedActivation(_ x: Tensor, _ kind: Activation) throws -> Tensor {
        try map(x, "activation") { activate($0, kind) }
    }

    public func uncheckedAdd(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try zip(a, b, "add", +)
    }

    public func uncheckedMultiply(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try zip(a, b, "multiply", *)
    }

    public func uncheckedGatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws -> Tensor {
        let op = "gatedAdd"
        let (batch, seq, dim) = (residual.shape[0], residual.shape[1], residual.shape[2])
        let (out, y) = empty(residual.shape)
        let shared = UncheckedSendable((try values(residual, op), try values(x, op), try values(gate, op), y))
        parallelFor(batch * seq, minChunk: 64) { rows in
            let (r, x, g, y) = shared.value
            for row in rows {
                let gate = g + (row / seq) * dim, base = row * dim
                for j in 0..<dim { y[base + j] = r[base + j] + gate[j] * x[base + j] }
            }
        }
        return out
    }

    /// `f` applied to every element.
    func map(_ x: Tensor, _ op: String, _ f: @escaping (Float) -> Float) throws -> Tensor {
        let (out, y) = empty(x.shape)
        let shared = UncheckedSendable((try values(x, op), y))
        parallelFor(x.count, minChunk: 16_384) { range in
            let (x, y) = shared.value
            for i in range { y[i] = f(x[i]) }
        }
        return out
    }

    /// `f` applied to pairs of elements of two tensors of one shape.
    func zip(_ a: Tensor, _ b: Tensor, _ op: String, _ f: @escaping (Float, Float) -> Float) throws -> Tensor {
        let (out, y) = empty(a.shape)
        let shared = UncheckedSendable((try values(a, op), try values(b, op), y))
        parallelFor(a.count, minChunk: 16_384) { range in
            let (a, b, y) = shared.value
            for i in range { y[i] = f(a[i], b[i]) }
        }
        return out
    }
}

extension CPUBackend {
    public func uncheckedScaleShift(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try map(x, "scaleShift") { $0 * scale + shift }
    }

    public func uncheckedAddScaled(_ a: Tensor, _ b: Tensor, scale: Float) throws -> Tensor {
        try zip(a, b, "addScaled") { $0 + scale * $1 }
    }

    public func uncheckedAbsSum(_ x: Tensor) throws -> Float {
        let v = try values(x, "absSum")
        var total = 0.0
        for i in 0..<x.count { total += Double(abs(v[i])) }
        return Float(total)
    }
}
