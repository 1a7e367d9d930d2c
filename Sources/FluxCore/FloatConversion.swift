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
