#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// A safetensors file: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data area.
// The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets count from the start of
// the data area) and may hold "__metadata__": {string: string}.
//
// What this reader accepts, against the reference (huggingface/safetensors, `safetensors/src/tensor.rs`):
// - the same: header at most 100 MB; JSON whitespace before and after the object; dtype strings as the reference
//   spells them; unknown fields inside a tensor entry are ignored; zero-sized tensors (begin == end).
// - stricter: duplicate keys are an error (we parse the JSON ourselves to see them; serde keeps the last one);
//   numbers must be plain non-negative integers; the JSON may nest at most 64 levels; a tensor name may not be empty.
// - looser: the reference wants spans to tile the data area exactly, in offset order. We only require every span to
//   lie inside the data area and no two to share a byte; gaps and trailing bytes are allowed and reported in
//   `unusedByteRanges`, so `inspect` can show them. Files we write have none.
// Nothing after the header is read until a tensor's bytes are used: the file is mapped read-only (MAP_PRIVATE) and
// pages come in on first touch. A file truncated by another process *after* it was opened can still fault on access
// (SIGBUS); no mmap reader can prevent that.

/// Where one tensor lives in a safetensors file.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Bytes within the data area (not the file): `data_offsets` of the header.
    public let byteRange: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    public var elementCount: Int { byteRange.count / dtype.byteSize }
}

/// One safetensors file, opened and fully validated; tensors are zero-copy views into a read-only mapping.
public final class SafetensorsFile: @unchecked Sendable {
    /// The largest header accepted, as in the reference implementation.
    public static let maxHeaderByteCount = 100_000_000

    public let path: String
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Length of the JSON header (the N of the first 8 bytes), padding included.
    public let headerByteCount: Int
    /// Size of the data area: the file size less 8 + `headerByteCount`.
    public let dataByteCount: Int
    /// Parts of the data area that no tensor covers (gaps between spans, bytes after the last), in order.
    public let unusedByteRanges: [Range<Int>]

    private let infosByName: [String: SafetensorsTensorInfo]
    private let sortedNames: [String]
    private let mapping: FileMapping

    /// Opens `path`, checks the whole header (lengths, UTF-8, JSON, dtypes, shapes, spans) and maps the file.
    /// Throws `SafetensorsError` for anything wrong; reads no tensor data.
    public init(path: String) throws {
        self.path = path
        let file = try ReadOnlyFile(path: path)
        defer { file.release() }
        guard file.size >= 8 else { throw SafetensorsError.tooSmall(path: path, size: file.size) }

        var lengthBytes = [UInt8](repeating: 0, count: 8)
        try file.read(into: &lengthBytes, at: 0)
        let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(Self.maxHeaderByteCount) else {
            throw SafetensorsError.headerTooLarge(path: path, length: length, limit: Self.maxHeaderByteCount)
        }
        let headerCount = Int(length)  // ≤ 100 MB, fits
        guard headerCount <= file.size - 8 else {
            throw SafetensorsError.headerPastEnd(path: path, length: length, fileSize: file.size)
        }
        var json = [UInt8](repeating: 0, count: headerCount)
        try file.read(into: &json, at: 8)

        let dataCount = file.size - 8 - headerCount
        let header = try SafetensorsHeader(json: json, path: path, dataByteCount: dataCount)
        mapping = try FileMapping(file: file)
        metadata = header.metadata
        headerByteCount = headerCount
        dataByteCount = dataCount
        unusedByteRanges = header.unusedByteRanges
        infosByName = Dictionary(header.tensors.map { ($0.name, $0) }) { first, _ in first }  // names are unique
        sortedNames = header.tensors.map(\.name)
    }

    /// Tensor names, sorted.
    public var names: [String] { sortedNames }

    /// Every tensor's entry, in name order.
    public var tensorInfos: [SafetensorsTensorInfo] { sortedNames.compactMap { infosByName[$0] } }

    /// Byte offset of the data area within the file.
    public var dataOffset: Int { 8 + headerByteCount }

    public func info(_ name: String) -> SafetensorsTensorInfo? { infosByName[name] }

    /// The tensor `name` as a view into the mapping (no copy); the view keeps the file mapped.
    public func tensor(_ name: String) throws -> HostTensor {
        guard let info = infosByName[name] else { throw SafetensorsError.tensorNotFound(path: path, tensor: name) }
        // Validated at init: dataOffset + byteRange lies within the mapping, and shape × dtype = byteRange.count.
        let start = mapping.base + dataOffset + info.byteRange.lowerBound
        return HostTensor(shape: info.shape, dtype: info.dtype,
                          bytes: UnsafeRawBufferPointer(start: start, count: info.byteRange.count), owner: mapping)
    }
}

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

// MARK: - Files

/// `strerror` as a Swift string.
func systemErrorText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// The kind of thing at a path, from `stat` (following links).
enum PathKind: Equatable {
    case missing, file, folder
    case other(String)

    init(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { self = .missing; return }
        self = PathKind(mode: info.st_mode)
    }

    init(mode: mode_t) {
        switch mode & mode_t(S_IFMT) {
        case mode_t(S_IFREG): self = .file
        case mode_t(S_IFDIR): self = .folder
        case mode_t(S_IFIFO): self = .other("pipe")
        case mode_t(S_IFSOCK): self = .other("socket")
        case mode_t(S_IFCHR), mode_t(S_IFBLK): self = .other("device")
        default: self = .other("special file")
        }
    }
}

/// A regular file open for reading. Opened non-blocking so that a pipe at `path` cannot hang us before the type check.
struct ReadOnlyFile {
    let path: String
    let descriptor: Int32
    let size: Int

    init(path: String) throws(SafetensorsError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw .notFound(path: path) }
            throw .unreadable(path: path, reason: systemErrorText(code))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw .unreadable(path: path, reason: systemErrorText(code))
        }
        let kind = PathKind(mode: info.st_mode)
        guard kind == .file else {
            close(fd)
            if case let .other(name) = kind { throw .notAFile(path: path, kind: name) }
            throw .notAFile(path: path, kind: "folder")
        }
        descriptor = fd
        size = Int(info.st_size)
    }

    /// Fills `buffer` from byte `offset`; a short file (one that shrank since `fstat`) is an error.
    func read(into buffer: inout [UInt8], at offset: Int) throws(SafetensorsError) {
        let failure: String? = buffer.withUnsafeMutableBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pread(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return systemErrorText(errno)
                }
                if n == 0 { return "file ended at byte \(offset + done), expected \(offset + raw.count)" }
                done += n
            }
            return nil
        }
        if let failure { throw .unreadable(path: path, reason: failure) }
    }

    /// Closes the descriptor; a mapping made from it stays valid.
    func release() { close(descriptor) }
}

/// A read-only private mapping of a whole file; unmapped when the last tensor view and the file object are gone.
final class FileMapping: @unchecked Sendable {
    let base: UnsafeRawPointer
    let byteCount: Int

    init(file: ReadOnlyFile) throws(SafetensorsError) {
        // `file.size` ≥ 8 here: a zero-length mapping is not possible, and the caller has checked.
        guard let address = mmap(nil, file.size, PROT_READ, MAP_PRIVATE, file.descriptor, 0),
              address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw .unreadable(path: file.path, reason: "mmap failed: \(systemErrorText(errno))")
        }
        base = UnsafeRawPointer(address)
        byteCount = file.size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) }
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

// MARK: - JSON

struct JSONSyntaxError: Error {
    let offset: Int
    let reason: String
}

/// A parsed JSON value; numbers keep their text so that integers are exact at any size.
indirect enum JSONValue {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null
}

/// A JSON number's text judged as a non-negative `Int`.
enum JSONInteger: Equatable {
    case value(Int), negative, notInteger, tooLarge

    init(_ text: String) {
        if text.hasPrefix("-") { self = .negative; return }
        guard text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { self = .notInteger; return }
        guard let n = Int(text) else { self = .tooLarge; return }
        self = .value(n)
    }
}

/// A strict JSON (RFC 8259) reader over bytes already checked as UTF-8: no trailing commas, comments, NaN or
/// leading zeros; duplicate keys are rejected; nesting is limited so that hostile input cannot exhaust the stack.
/// Callers drive it: `readObject` and `readArray` call back for each member, so a schema can judge each field.
struct JSONScanner {
    static let maxDepth = 64

    private let bytes: [UInt8]
    private(set) var position = 0
    private var depth = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private func fail(_ reason: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? position, reason: reason)
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    /// The next non-whitespace byte, not consumed.
    mutating func peek() -> UInt8? {
        skipWhitespace()
        return position < bytes.count ? bytes[position] : nil
    }

    /// The kind of the next value, judged by its first byte: "object", "array", "string", "number", "boolean" or
    /// "null"; a syntax error where no value can start.
    mutating func peekKind() throws -> String {
        guard let first = peek() else { throw fail("unexpected end") }
        switch first {
        case UInt8(ascii: "{"): return "object"
        case UInt8(ascii: "["): return "array"
        case UInt8(ascii: "\""): return "string"
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return "number"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "boolean"
        case UInt8(ascii: "n"): return "null"
        default: throw fail("invalid value")
        }
    }

    private mutating func expect(_ byte: UInt8) throws {
        guard peek() == byte else {
            throw fail(position < bytes.count ? "expected '\(Character(Unicode.Scalar(byte)))'" : "unexpected end")
        }
        position += 1
    }

    /// Only whitespace may follow the top-level value.
    mutating func expectEnd() throws {
        if peek() != nil { throw fail("unexpected data after the top-level value") }
    }

    private mutating func enter() throws {
        depth += 1
        if depth > Self.maxDepth { throw fail("nested deeper than \(Self.maxDepth) levels") }
    }

    /// Reads `{...}`, calling `member` with each key once the scanner stands at the key's value; `member` must read
    /// exactly that value.
    mutating func readObject(uniqueKeys: Bool = true,
                             _ member: (inout JSONScanner, _ key: String, _ keyOffset: Int) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        try enter()
        defer { depth -= 1 }
        var seen = Set<String>()
        if peek() == UInt8(ascii: "}") { position += 1; return }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyOffset = position
            let key = try readString()
            if uniqueKeys, !seen.insert(key).inserted { throw fail("duplicate key \"\(key)\"", at: keyOffset) }
            try expect(UInt8(ascii: ":"))
            try member(&self, key, keyOffset)
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    /// Reads `[...]`, calling `element` with each index; `element` must read exactly that value.
    mutating func readArray(_ element: (inout JSONScanner, _ index: Int) throws -> Void) throws {
        try expect(UInt8(ascii: "["))
        try enter()
        defer { depth -= 1 }
        if peek() == UInt8(ascii: "]") { position += 1; return }
        var index = 0
        while true {
            try element(&self, index)
            index += 1
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    mutating func readString() throws -> String {
        try expect(UInt8(ascii: "\""))
        var out: [UInt8] = []
        while true {
            guard position < bytes.count else { throw fail("unterminated string") }
            let b = bytes[position]
            switch b {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                guard position < bytes.count else { throw fail("unterminated string") }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    let scalar = try readUnicodeEscape()
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw fail("invalid escape '\\\(Character(Unicode.Scalar(escape)))'", at: position - 2)
                }
            case 0x00..<0x20:
                throw fail("control character in a string")
            default:
                out.append(b)
                position += 1
            }
        }
    }

    /// After `\u`: four hex digits, and a second `\uXXXX` for a surrogate pair.
    private mutating func readUnicodeEscape() throws -> Unicode.Scalar {
        let start = position - 2
        func hex4(_ scanner: inout JSONScanner) throws -> UInt32 {
            guard scanner.position + 4 <= scanner.bytes.count else { throw scanner.fail("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let c = scanner.bytes[scanner.position]
                let digit: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw scanner.fail("invalid \\u escape")
                }
                value = value << 4 | digit
                scanner.position += 1
            }
            return value
        }
        let first = try hex4(&self)
        var code = first
        if (0xD800...0xDBFF).contains(first) {
            guard position + 2 <= bytes.count, bytes[position] == UInt8(ascii: "\\"),
                  bytes[position + 1] == UInt8(ascii: "u") else { throw fail("unpaired surrogate", at: start) }
            position += 2
            let second = try hex4(&self)
            guard (0xDC00...0xDFFF).contains(second) else { throw fail("unpaired surrogate", at: start) }
            code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        }
        guard let scalar = Unicode.Scalar(code) else { throw fail("unpaired surrogate", at: start) }
        return scalar
    }

    /// A number as written; its grammar is checked, its value is the caller's business.
    mutating func readNumber() throws -> String {
        skipWhitespace()
        let start = position
        func digits(_ scanner: inout JSONScanner) -> Int {
            let from = scanner.position
            while scanner.position < scanner.bytes.count,
                  (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(scanner.bytes[scanner.position]) {
                scanner.position += 1
            }
            return scanner.position - from
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
        if position < bytes.count, bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else if digits(&self) == 0 {
            throw fail("invalid number", at: start)
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            if digits(&self) == 0 { throw fail("invalid number", at: start) }
        }
        if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            if digits(&self) == 0 { throw fail("invalid number", at: start) }
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private mutating func readLiteral(_ word: String) throws {
        let start = position
        for c in word.utf8 {
            guard position < bytes.count, bytes[position] == c else { throw fail("invalid value", at: start) }
            position += 1
        }
    }

    /// Any value, materialised.
    mutating func readValue() throws -> JSONValue {
        switch peek() {
        case UInt8(ascii: "{"):
            var members: [(key: String, value: JSONValue)] = []
            try readObject { scanner, key, _ in members.append((key, try scanner.readValue())) }
            return .object(members)
        case UInt8(ascii: "["):
            var elements: [JSONValue] = []
            try readArray { scanner, _ in elements.append(try scanner.readValue()) }
            return .array(elements)
        case UInt8(ascii: "\""):
            return .string(try readString())
        case UInt8(ascii: "t"):
            try readLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try readLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try readLiteral("null")
            return .null
        case nil:
            throw fail("unexpected end")
        default:
            return .number(try readNumber())
        }
    }
}
