/// fp8 linear layers: weights stored as f8 e4m3 with one f32 scale per output row, activations quantized per row when
/// they meet the weight (the "row-wise dynamic" recipe of torchao's float8 and TensorRT's FLUX fp8).
///
/// A row r of a matrix (weight row = output feature, activation row = token) becomes
/// `scale_r = max_k |x[r, k]| / 448` and `q[r, k] = e4m3(x[r, k] / scale_r)` (round to nearest even, saturating), so
/// the row's largest entry lands on e4m3's largest finite value; an all-zero row gets scale 1. The product
/// `y[m, n] = (Σ_k q_x[m, k] · q_w[n, k]) · scale_x[m] · scale_w[n] + bias[n]` then runs on fp8 tensor cores.

/// How a model keeps the weights of its large linear layers.
public enum LinearQuantization: String, Sendable, CaseIterable, Codable {
    /// The checkpoint's numbers in the backend's compute dtype (bf16 on the GPU, f32 on the CPU).
    case none
    /// f8 e4m3 weights with one scale per output row; activations quantized per row at each product.
    case fp8
}

/// A linear weight (N, K) quantized row by row: `W[n, k] ≈ values[n, k] · scales[n]`.
///
/// `values` holds e4m3 numbers: dtype `f8e4m3` (one byte each) on the GPU; on the CPU, f32 numbers that are exactly
/// e4m3 values. `scales` is f32 (N).
public struct QuantizedWeight: Sendable {
    public let values: Tensor
    public let scales: Tensor

    public init(values: Tensor, scales: Tensor) { (self.values, self.scales) = (values, scales) }

    /// (N, K).
    public var shape: [Int] { values.shape }
}

/// Activation rows quantized for an fp8 product (`Backend.quantizeRows`): `x[r, k] ≈ values[r, k] · scales[r]`.
/// values (..., K) as in `QuantizedWeight` (one byte each on the GPU, f32 on the CPU), scales f32 (rows).
public struct QuantizedRows: Sendable {
    public let values: Tensor
    public let scales: Tensor

    public init(values: Tensor, scales: Tensor) { (self.values, self.scales) = (values, scales) }

    /// (..., K).
    public var shape: [Int] { values.shape }
}

/// The scale of one row whose largest magnitude is `absMax` (see the file comment); 1 when that is 0 or so small
/// that the scale would underflow.
@inline(__always) public func float8RowScale(absMax: Float) -> Float {
    let scale = absMax / float8E4M3Max
    return scale > 0 && scale.isFinite ? scale : 1
}

/// Quantizes `rows` rows of `cols` f32 values at `source` into e4m3 values (written as f32 to `values`) and one scale
/// per row (`scales`). `values` may be `source`.
public func quantizeRowsToFloat8E4M3(_ source: UnsafePointer<Float>, rows: Int, cols: Int,
                                     values: UnsafeMutablePointer<Float>, scales: UnsafeMutablePointer<Float>)
{
    for r in 0..<rows {
        let row = source + r * cols, out = values + r * cols
        var absMax: Float = 0
        for k in 0..<cols { absMax = max(absMax, row[k].magnitude) }
        let scale = float8RowScale(absMax: absMax)
        scales[r] = scale
        for k in 0..<cols { out[k] = roundedToFloat8E4M3(row[k] / scale) }
    }
}
