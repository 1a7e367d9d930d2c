/// Errors raised by tensor arithmetic and backends. Each names the operation and what was wrong with which shape.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    /// An operand has the wrong shape: `op`, the operand's name, its shape, and what was expected.
    case shapeMismatch(op: String, operand: String, shape: [Int], expected: String)
    /// A dtype the operation cannot take.
    case unsupportedDType(op: String, dtype: DType)
    /// A tensor made by one backend was handed to another.
    case foreignStorage(op: String, backend: String)
    /// The backend could not allocate `bytes`.
    case outOfMemory(backend: String, bytes: Int)
    /// Anything else a backend reports (driver errors and the like), with its own words.
    case backend(String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, operand, shape, expected):
            "\(op): \(operand) has shape \(shape), expected \(expected)"
        case let .unsupportedDType(op, dtype):
            "\(op): dtype \(dtype.rawValue) is not supported"
        case let .foreignStorage(op, backend):
            "\(op): tensor does not belong to the \(backend) backend"
        case let .outOfMemory(backend, bytes):
            "\(backend): out of memory allocating \(bytes) bytes"
        case let .backend(message):
            message
        }
    }
}

/// Product of a shape's dimensions, or nil on overflow or a negative dimension.
public func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        n = p
    }
    return n
}
