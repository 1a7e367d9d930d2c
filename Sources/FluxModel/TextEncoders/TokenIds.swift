import FluxCore

/// A batch of token-id rows of equal length, as a tokenizer pads them: `input_ids` (B, L).
public struct TokenIds: Sendable, Equatable {
    /// Row-major (B, L).
    public let values: [Int32]
    public let batch: Int
    public let length: Int

    /// Rows of equal length.
    public init(rows: [[Int32]]) throws {
        let length = rows.first?.count ?? 0
        guard !rows.isEmpty, length > 0, rows.allSatisfy({ $0.count == length }) else {
            throw ModelError.inputShape(name: "input_ids", shape: rows.map(\.count), expected: "B ≥ 1 rows of one length L ≥ 1")
        }
        self.init(checked: rows.flatMap { $0 }, batch: rows.count, length: length)
    }

    /// From a tensor (B, L) (or (L,), one row) of any integer dtype, or of a float dtype holding whole numbers.
    public init(_ tensor: HostTensor, name: String = "input_ids") throws {
        var shape = tensor.shape
        if shape.count == 1 { shape.insert(1, at: 0) }
        guard shape.count == 2, shape[0] > 0, shape[1] > 0 else {
            throw ModelError.inputShape(name: name, shape: tensor.shape, expected: "(B, L) token ids")
        }
        let wide = try Self.integers(tensor, name: name)
        var values = [Int32]()
        values.reserveCapacity(wide.count)
        for (i, v) in wide.enumerated() {
            guard let narrow = Int32(exactly: v), narrow >= 0 else {
                throw TokenIdError.invalid(name: name, value: "\(v)", row: i / shape[1], position: i % shape[1],
                                           reason: "token ids are non-negative 32-bit integers")
            }
            values.append(narrow)
        }
        self.init(checked: values, batch: shape[0], length: shape[1])
    }

    private init(checked values: [Int32], batch: Int, length: Int) {
        self.values = values
        self.batch = batch
        self.length = length
    }

    public var shape: [Int] { [batch, length] }

    public func row(_ b: Int) -> ArraySlice<Int32> { values[b * length ..< (b + 1) * length] }

    /// Throws unless every id is below `vocabularySize` (the embedding table's rows).
    public func checkVocabulary(_ vocabularySize: Int, name: String = "input_ids") throws {
        if let i = values.firstIndex(where: { Int($0) >= vocabularySize }) {
            throw TokenIdError.outsideVocabulary(name: name, id: Int(values[i]), row: i / length,
                                                 position: i % length, vocabularySize: vocabularySize)
        }
    }

    /// The values as 64-bit integers, read by dtype.
    private static func integers(_ t: HostTensor, name: String) throws -> [Int64] {
        let raw = t.bytes
        switch t.dtype {
        case .i64: return (0..<t.count).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
        case .i32: return (0..<t.count).map { Int64(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        case .i16: return (0..<t.count).map { Int64(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
        case .i8: return (0..<t.count).map { Int64(raw.loadUnaligned(fromByteOffset: $0, as: Int8.self)) }
        case .u8: return (0..<t.count).map { Int64(raw[$0]) }
        case .bool:
            throw TokenIdError.invalid(name: name, value: "BOOL", row: 0, position: 0, reason: "not a token-id dtype")
        case .f64, .f32, .f16, .bf16, .f8e4m3, .f8e5m2:
            let floats = t.dtype == .f64
                ? (0..<t.count).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
                : t.floats().map(Double.init)
            let columns = max(t.shape.last ?? 1, 1)
            return try floats.enumerated().map { i, v in
                guard v.isFinite, v.rounded() == v, let whole = Int64(exactly: v) else {
                    throw TokenIdError.invalid(name: name, value: "\(v)", row: i / columns, position: i % columns,
                                               reason: "token ids must be whole numbers")
                }
                return whole
            }
        }
    }
}

/// Token ids a text encoder cannot take, naming the input, the row and the position.
public enum TokenIdError: Error, CustomStringConvertible, Equatable {
    case outsideVocabulary(name: String, id: Int, row: Int, position: Int, vocabularySize: Int)
    case invalid(name: String, value: String, row: Int, position: Int, reason: String)

    public var description: String {
        switch self {
        case let .outsideVocabulary(name, id, row, position, vocabularySize):
            "input \(name): token id \(id) at row \(row), position \(position) is outside the vocabulary (\(vocabularySize) tokens)"
        case let .invalid(name, value, row, position, reason):
            "input \(name): \(value) at row \(row), position \(position): \(reason)"
        }
    }
}
