/// Element types FluxServe reads from checkpoints and keeps in backend memory.
///
/// Names follow the safetensors header (`"BF16"`, `"F8_E4M3"`, ...). Only the floating types are compute types; the
/// integer types appear in checkpoints (ids, counters) and are readable, not computable.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case f8e4m3 = "F8_E4M3"
    case f8e5m2 = "F8_E5M2"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u8 = "U8"
    case bool = "BOOL"

    /// The safetensors spelling, e.g. `BF16`.
    public var safetensorsName: String { rawValue }

    public init?(safetensorsName: String) { self.init(rawValue: safetensorsName) }

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .f8e4m3, .f8e5m2, .i8, .u8, .bool: 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16, .f8e4m3, .f8e5m2: true
        default: false
        }
    }
}
