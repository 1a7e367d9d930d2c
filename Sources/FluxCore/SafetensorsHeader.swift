#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Header validation

/// The checked contents of a header: every tensor's dtype known, shape × dtype size equal to its span, every span
/// inside the data area, no two spans overlapping.
struct SafetensorsHeader {
    var metadata: [String: String] = [:]
    /// Sorted by name.
    var tensors: [SafetensorsTensorInfo] = []
    var unusedByteRanges: [Range<Int>] = []

    /// The fields of one entry as written, numbers still as text, so that each can be judged with its own reason.
    private struct RawEntry {
        var dtype: String?
        var shape: [String]?
        var offsets: [String]?
    }

    init(json: [UInt8], path: String, dataByteCount: Int) throws(SafetensorsError) {
        if let bad = firstInvalidUTF8Offset(json) { throw .headerNotUTF8(path: path, offset: bad) }
        var raw: [(name: String, entry: RawEntry)] = []
        do {
            var scanner = JSONScanner(json)
            guard scanner.peek() == UInt8(ascii: "{") else {
                throw JSONSyntaxError(offset: scanner.position, reason: "the header must be a JSON object")
            }
            var seen = Set<String>()
            var metadata: [String: String] = [:]
            try scanner.readObject(uniqueKeys: false) { scanner, key, _ in
                guard seen.insert(key).inserted else {
                    throw key == "__metadata__"
                        ? SafetensorsError.invalidMetadata(path: path, reason: "appears twice in the header")
                        : SafetensorsError.invalidTensor(path: path, tensor: key, reason: "appears twice in the header")
                }
                if key == "__metadata__" {
                    metadata = try Self.readMetadata(&scanner, path: path)
                } else {
                    raw.append((key, try Self.readEntry(&scanner, name: key, path: path)))
                }
            }
            try scanner.expectEnd()
            self.metadata = metadata
        } catch let error as SafetensorsError {
            throw error
        } catch let error as JSONSyntaxError {
            throw .invalidJSON(path: path, offset: error.offset, reason: error.reason)
        } catch {
            throw .invalidJSON(path: path, offset: 0, reason: "\(error)")
        }

        tensors = try raw.map { item throws(SafetensorsError) in
            try Self.check(item.entry, name: item.name, path: path, dataByteCount: dataByteCount)
        }
        tensors.sort { $0.name < $1.name }
        unusedByteRanges = try Self.checkLayout(tensors, path: path, dataByteCount: dataByteCount)
    }

    private static func readMetadata(_ scanner: inout JSONScanner, path: String) throws -> [String: String] {
        let kind = try scanner.peekKind()
        if kind == "null" {
            _ = try scanner.readValue()
            return [:]
        }
        guard kind == "object" else {
            throw SafetensorsError.invalidMetadata(path: path, reason: "is a \(kind), expected an object of strings")
        }
        var metadata: [String: String] = [:]
        try scanner.readObject { scanner, key, _ in
            let valueKind = try scanner.peekKind()
            guard valueKind == "string" else {
                throw SafetensorsError.invalidMetadata(
                    path: path, reason: "value of '\(key)' is a \(valueKind), expected a string")
            }
            metadata[key] = try scanner.readString()
        }
        return metadata
    }

    private static func readEntry(_ scanner: inout JSONScanner, name: String, path: String) throws -> RawEntry {
        guard !name.isEmpty else {
            throw SafetensorsError.invalidTensor(path: path, tensor: name, reason: "tensor name is empty")
        }
        let kind = try scanner.peekKind()
        guard kind == "object" else {
            throw SafetensorsError.invalidTensor(path: path, tensor: name, reason: "entry is a \(kind), expected an object")
        }
        var entry = RawEntry()
        try scanner.readObject { scanner, field, _ in
            switch field {
            case "dtype":
                let kind = try scanner.peekKind()
                guard kind == "string" else {
                    throw SafetensorsError.invalidTensor(path: path, tensor: name,
                                                         reason: "dtype is a \(kind), expected a string")
                }
                entry.dtype = try scanner.readString()
            case "shape", "data_offsets":
                let kind = try scanner.peekKind()
                guard kind == "array" else {
                    throw SafetensorsError.invalidTensor(path: path, tensor: name,
                                                         reason: "\(field) is a \(kind), expected an array of integers")
                }
                var numbers: [String] = []
                try scanner.readArray { scanner, index in
                    let kind = try scanner.peekKind()
                    guard kind == "number" else {
                        throw SafetensorsError.invalidTensor(path: path, tensor: name,
                                                             reason: "\(field)[\(index)] is a \(kind), expected an integer")
                    }
                    numbers.append(try scanner.readNumber())
                }
                if field == "shape" { entry.shape = numbers } else { entry.offsets = numbers }
            default:
                _ = try scanner.readValue()  // unknown fields are ignored, as the reference does
            }
        }
        return entry
    }

    private static func check(_ entry: RawEntry, name: String, path: String,
                              dataByteCount: Int) throws(SafetensorsError) -> SafetensorsTensorInfo {
        func invalid(_ reason: String) -> SafetensorsError { .invalidTensor(path: path, tensor: name, reason: reason) }
        guard let dtypeName = entry.dtype else { throw invalid("missing \"dtype\"") }
        guard let shapeText = entry.shape else { throw invalid("missing \"shape\"") }
        guard let offsetText = entry.offsets else { throw invalid("missing \"data_offsets\"") }
        guard let dtype = DType(safetensorsName: dtypeName) else {
            throw .unknownDType(path: path, tensor: name, dtype: dtypeName)
        }

        let shapeDescription = "[" + shapeText.joined(separator: ", ") + "]"
        var shape: [Int] = []
        for (i, text) in shapeText.enumerated() {
            switch JSONInteger(text) {
            case let .value(n): shape.append(n)
            case .negative: throw invalid("shape[\(i)] = \(text) is negative")
            case .notInteger: throw invalid("shape[\(i)] = \(text) is not an integer")
            case .tooLarge: throw .shapeOverflow(path: path, tensor: name, shape: shapeDescription)
            }
        }
        guard let count = elementCount(shape) else {
            throw .shapeOverflow(path: path, tensor: name, shape: shapeDescription)
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        if overflow { throw .shapeOverflow(path: path, tensor: name, shape: shapeDescription) }

        let offsetsDescription = "[" + offsetText.joined(separator: ", ") + "]"
        guard offsetText.count == 2 else {
            throw invalid("data_offsets \(offsetsDescription) must hold exactly two integers")
        }
        var offsets: [Int] = []
        for (i, text) in offsetText.enumerated() {
            switch JSONInteger(text) {
            case let .value(n): offsets.append(n)
            case .negative: throw invalid("data_offsets[\(i)] = \(text) is negative")
            case .notInteger: throw invalid("data_offsets[\(i)] = \(text) is not an integer")
            case .tooLarge:
                throw .spanOutOfRange(path: path, tensor: name, offsets: offsetsDescription, dataByteCount: dataByteCount)
            }
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw invalid("data_offsets \(offsetsDescription) run backwards") }
        guard end <= dataByteCount else {
            throw .spanOutOfRange(path: path, tensor: name, offsets: offsetsDescription, dataByteCount: dataByteCount)
        }
        guard end - begin == byteCount else {
            throw .sizeMismatch(path: path, tensor: name, expected: byteCount, actual: end - begin)
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    /// Rejects overlapping spans; returns the bytes of the data area that no tensor covers.
    private static func checkLayout(_ tensors: [SafetensorsTensorInfo], path: String,
                                    dataByteCount: Int) throws(SafetensorsError) -> [Range<Int>] {
        let spans = tensors.filter { !$0.byteRange.isEmpty }.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name)
                < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }
        var unused: [Range<Int>] = []
        var coveredTo = 0
        var coveringName = ""
        for span in spans {
            if span.byteRange.lowerBound < coveredTo {
                throw .overlappingSpans(path: path, tensor: span.name, other: coveringName)
            }
            if span.byteRange.lowerBound > coveredTo { unused.append(coveredTo..<span.byteRange.lowerBound) }
            coveredTo = span.byteRange.upperBound
            coveringName = span.name
        }
        if coveredTo < dataByteCount { unused.append(coveredTo..<dataByteCount) }
        return unused
    }
}

// MARK: - UTF-8

/// Offset of the first byte that is not part of well-formed UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF), or nil.
func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int? {
    var i = 0
    let n = bytes.count
    while i < n {
        let b = bytes[i]
        if b < 0x80 { i += 1; continue }
        let length: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF  // allowed range of the second byte
        switch b {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: return i
        }
        guard i + length <= n else { return i }
        guard bytes[i + 1] >= low, bytes[i + 1] <= high else { return i }
        for k in 2..<length where bytes[i + k] & 0xC0 != 0x80 { return i }
        i += length
    }
    return nil
}
