/// Conversions between the checkpoint dtypes and f32. bf16 keeps f32's exponent (the top 16 bits of an f32);
/// f8 e4m3 is the OCP "fn" variant (bias 7, no infinities, S.1111.111 is NaN) as torch.float8_e4m3fn.

/// bf16 bits → f32.
@inline(__always) public func bfloat16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// f32 → bf16 bits, rounding to nearest even (NaN stays NaN), as torch's `.to(torch.bfloat16)`.
@inline(__always) public func floatToBfloat16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
    let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

/// f8 e4m3fn bits → f32.
@inline(__always) public func float8E4M3ToFloat(_ bits: UInt8) -> Float {
    let sign: Float = bits & 0x80 != 0 ? -1 : 1
    let exponent = Int((bits >> 3) & 0xF)
    let mantissa = Float(bits & 0x7)
    if exponent == 0xF && bits & 0x7 == 0x7 { return .nan }
    if exponent == 0 { return sign * mantissa / 8 * Float(sign: .plus, exponent: -6, significand: 1) }
    return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
}

/// f8 e5m2 bits → f32 (the top byte of an f16).
@inline(__always) public func float8E5M2ToFloat(_ bits: UInt8) -> Float {
    Float(Float16(bitPattern: UInt16(bits) << 8))
}

/// Decodes `raw` (elements of `dtype`) into `out` as f32. `out.count` must equal the element count.
public func convertToFloat(_ raw: UnsafeRawBufferPointer, dtype: DType, into out: UnsafeMutableBufferPointer<Float>) {
    let n = out.count
    precondition(raw.count == n * dtype.byteSize)
    guard n > 0, let base = raw.baseAddress else { return }
    switch dtype {
    case .f32:
        out.baseAddress!.update(from: base.assumingMemoryBound(to: Float.self), count: n)
    case .f64:
        for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
    case .f16:
        for i in 0..<n { out[i] = Float(Float16(bitPattern: base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
    case .bf16:
        for i in 0..<n { out[i] = bfloat16ToFloat(base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
    case .f8e4m3:
        for i in 0..<n { out[i] = float8E4M3ToFloat(base.load(fromByteOffset: i, as: UInt8.self)) }
    case .f8e5m2:
        for i in 0..<n { out[i] = float8E5M2ToFloat(base.load(fromByteOffset: i, as: UInt8.self)) }
    case .i64:
        for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
    case .i32:
        for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
    case .i16:
        for i in 0..<n { out[i] = Float(base.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)) }
    case .i8:
        for i in 0..<n { out[i] = Float(base.load(fromByteOffset: i, as: Int8.self)) }
    case .u8, .bool:
        for i in 0..<n { out[i] = Float(base.load(fromByteOffset: i, as: UInt8.self)) }
    }
}

/// The largest finite f8 e4m3fn value (S.1111.110 = 1.75 · 2⁸).
public let float8E4M3Max: Float = 448

/// f32 → f8 e4m3fn bits, rounding to nearest even and saturating to ±448 (PTX `cvt.rn.satfinite.e4m3x2.f32`, the
/// conversion the GPU kernels use); NaN → 0x7F. Below 2⁻⁶ the grid is the subnormal one, steps of 2⁻⁹.
@inline(__always) public func floatToFloat8E4M3(_ value: Float) -> UInt8 {
    if value.isNaN { return 0x7F }
    let sign: UInt8 = value.sign == .minus ? 0x80 : 0
    let a = value.magnitude
    if a >= float8E4M3Max { return sign | 0x7E }
    if a < 0x1p-6 {
        // Subnormal: a multiple of 2⁻⁹; 8 · 2⁻⁹ rounds up into the smallest normal, whose bits are the same 0x08.
        return sign | UInt8((a * 0x1p9).rounded(.toNearestOrEven))
    }
    var exponent = Int(a.exponent)                                    // 2^exponent ≤ a, exponent in -6 ... 8
    var steps = (a * Float(sign: .plus, exponent: 3 - exponent, significand: 1)).rounded(.toNearestOrEven)
    if steps == 16 { (exponent, steps) = (exponent + 1, 8) }           // rounded up to the next power of two
    return sign | UInt8((exponent + 7) << 3) | UInt8(Int(steps) - 8)
}

/// `value` rounded onto the e4m3 grid (`floatToFloat8E4M3` then back).
@inline(__always) public func roundedToFloat8E4M3(_ value: Float) -> Float {
    float8E4M3ToFloat(floatToFloat8E4M3(value))
}
