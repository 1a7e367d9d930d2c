/// The parts of a SentencePiece `ModelProto` (spiece.model) a unigram tokenizer needs, read with a minimal
/// protobuf decoder. Field numbers from sentencepiece_model.proto:
///   ModelProto      pieces = 1 (repeated SentencePiece), trainer_spec = 2, normalizer_spec = 3
///   SentencePiece   piece = 1 (string), score = 2 (float), type = 3 (enum, NORMAL = 1 by default)
///   TrainerSpec     model_type = 3 (UNIGRAM = 1 by default), byte_fallback = 35, unk_id = 40 (default 0)
///   NormalizerSpec  name = 1, precompiled_charsmap = 2 (bytes)
struct SentencePieceModel: Sendable {
    enum PieceType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    struct Piece: Sendable {
        var text: String
        var score: Float
        var type: PieceType
    }

    var pieces: [Piece] = []
    var modelType = 1
    var unkId = 0
    var byteFallback = false
    var normalizerName = ""
    var precompiledCharsmap: [UInt8] = []

    struct FormatError: Error {
        var reason: String
    }

    init(_ bytes: [UInt8]) throws(FormatError) {
        var reader = ProtobufReader(bytes[...])
        var sawTrainerSpec = false
        var sawNormalizerSpec = false
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2): pieces.append(try Self.piece(try reader.bytes()))
            case (2, 2): try readTrainerSpec(try reader.bytes()); sawTrainerSpec = true
            case (3, 2): try readNormalizerSpec(try reader.bytes()); sawNormalizerSpec = true
            default: try reader.skip(wire)
            }
        }
        guard !pieces.isEmpty else { throw FormatError(reason: "the model has no pieces") }
        // SentencePiece always writes both specs after the pieces; a file cut between two pieces is still valid
        // protobuf, and their absence is how the cut shows.
        guard sawTrainerSpec && sawNormalizerSpec else {
            throw FormatError(reason: "trainer_spec or normalizer_spec missing (truncated file?)")
        }
    }

    private static func piece(_ bytes: ArraySlice<UInt8>) throws(FormatError) -> Piece {
        var reader = ProtobufReader(bytes)
        var piece = Piece(text: "", score: 0, type: .normal)
        var sawText = false
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2):
                guard let text = String(validating: try reader.bytes(), as: UTF8.self) else {
                    throw FormatError(reason: "a piece is not UTF-8")
                }
                piece.text = text
                sawText = true
            case (2, 5): piece.score = Float(bitPattern: try reader.fixed32())
            case (3, 0):
                let raw = try reader.varint()
                guard let type = PieceType(rawValue: Int(truncatingIfNeeded: raw)) else {
                    throw FormatError(reason: "piece type \(raw) is unknown")
                }
                piece.type = type
            default: try reader.skip(wire)
            }
        }
        guard sawText else { throw FormatError(reason: "a piece has no text") }
        return piece
    }

    private mutating func readTrainerSpec(_ bytes: ArraySlice<UInt8>) throws(FormatError) {
        var reader = ProtobufReader(bytes)
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (3, 0): modelType = Int(truncatingIfNeeded: try reader.varint())
            case (35, 0): byteFallback = try reader.varint() != 0
            case (40, 0): unkId = Int(Int32(truncatingIfNeeded: try reader.varint()))
            default: try reader.skip(wire)
            }
        }
    }

    private mutating func readNormalizerSpec(_ bytes: ArraySlice<UInt8>) throws(FormatError) {
        var reader = ProtobufReader(bytes)
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2): normalizerName = String(decoding: try reader.bytes(), as: UTF8.self)
            case (2, 2): precompiledCharsmap = Array(try reader.bytes())
            default: try reader.skip(wire)
            }
        }
    }
}

/// Reads protobuf wire format: varints, fixed 32/64-bit values and length-delimited fields.
private struct ProtobufReader {
    private let buffer: ArraySlice<UInt8>
    private var at: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.buffer = bytes
        self.at = buffer.startIndex
    }

    /// The next field's number and wire type, nil at the end.
    mutating func nextField() throws(SentencePieceModel.FormatError) -> (Int, Int)? {
        if at >= buffer.endIndex { return nil }
        let key = try varint()
        let field = Int(truncatingIfNeeded: key >> 3)
        guard field > 0 else { throw .init(reason: "field number 0 at byte \(at - buffer.startIndex)") }
        return (field, Int(key & 7))
    }

    mutating func varint() throws(SentencePieceModel.FormatError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard at < buffer.endIndex else { throw .init(reason: "truncated varint") }
            guard shift < 64 else { throw .init(reason: "varint longer than 10 bytes") }
            let byte = buffer[at]
            at += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func fixed32() throws(SentencePieceModel.FormatError) -> UInt32 {
        guard buffer.endIndex - at >= 4 else { throw .init(reason: "truncated 32-bit field") }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(buffer[at + i]) << (8 * UInt32(i)) }
        at += 4
        return value
    }

    mutating func bytes() throws(SentencePieceModel.FormatError) -> ArraySlice<UInt8> {
        let length = try varint()
        guard length <= UInt64(buffer.endIndex - at) else {
            throw .init(reason: "a field of \(length) bytes overruns the data")
        }
        let slice = buffer[at..<(at + Int(length))]
        at += Int(length)
        return slice
    }

    mutating func skip(_ wire: Int) throws(SentencePieceModel.FormatError) {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard buffer.endIndex - at >= 8 else { throw .init(reason: "truncated 64-bit field") }
            at += 8
        case 2: _ = try bytes()
        case 5: _ = try fixed32()
        default: throw .init(reason: "unsupported wire type \(wire)")
        }
    }
}
