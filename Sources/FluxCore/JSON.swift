/// The one strict JSON (RFC 8259) reader of FluxServe: safetensors headers and index files, tokenizer files and HTTP
/// request bodies all go through it. No trailing commas, comments, NaN, leading zeros or bare control characters;
/// nesting is limited so that hostile input cannot exhaust the stack. Numbers keep their text, so that integers are
/// exact at any size and floats parse with `Double(String)` the same way everywhere.
///
/// Readers differ only in what `Options` says: whether a repeated key is an error (safetensors, HTTP) or the last
/// one wins (tokenizer files, as Python's `json.load`), and whether a lone UTF-16 surrogate escape is an error or
/// becomes U+FFFD (as Python writes and reads them in vocabularies).
public struct JSONSyntaxError: Error, CustomStringConvertible, Equatable {
    /// Byte offset in the input where the problem was seen.
    public let offset: Int
    public let reason: String

    public init(offset: Int, reason: String) { (self.offset, self.reason) = (offset, reason) }

    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// A parsed JSON value. Objects keep their members in document order.
public indirect enum JSONValue: Sendable {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// The member `key` of an object (the last one, if a lenient reader kept repeats), else nil.
    public subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

/// A JSON number's text judged as a non-negative `Int`.
public enum JSONInteger: Equatable, Sendable {
    case value(Int), negative, notInteger, tooLarge

    public init(_ text: String) {
        if text.hasPrefix("-") { self = .negative; return }
        guard text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { self = .notInteger; return }
        guard let n = Int(text) else { self = .tooLarge; return }
        self = .value(n)
    }
}

/// Reads JSON from bytes already checked as UTF-8. Callers either materialise a value (`parse`, `readValue`) or
/// drive it: `readObject` and `readArray` call back for each member, so a schema can judge each field as it comes.
public struct JSONScanner {
    public struct Options: Sendable {
        /// A key repeated in one object is an error; otherwise every occurrence is kept in the value (and
        /// `JSONValue`'s subscript answers with the last).
        public var rejectDuplicateKeys: Bool
        /// A `\uD800`-style escape without its pair is an error; otherwise it reads as U+FFFD.
        public var rejectLoneSurrogates: Bool
        public var maxDepth: Int

        public init(rejectDuplicateKeys: Bool = true, rejectLoneSurrogates: Bool = true, maxDepth: Int = 64) {
            (self.rejectDuplicateKeys, self.rejectLoneSurrogates, self.maxDepth) =
                (rejectDuplicateKeys, rejectLoneSurrogates, maxDepth)
        }

        /// Untrusted input we define the rules for (safetensors headers, HTTP bodies).
        public static let strict = Options()
        /// Files written by Python tools (tokenizers): the last repeated key wins and lone surrogates are repaired,
        /// as `json.load` reads them.
        public static let python = Options(rejectDuplicateKeys: false, rejectLoneSurrogates: false, maxDepth: 512)
    }

    private let bytes: [UInt8]
    private let options: Options
    public private(set) var position = 0
    private var depth = 0

    public init(_ bytes: [UInt8], options: Options = .strict) { (self.bytes, self.options) = (bytes, options) }

    /// A whole document: one value, then only whitespace.
    public static func parse(_ bytes: [UInt8], options: Options = .strict) throws(JSONSyntaxError) -> JSONValue {
        var scanner = JSONScanner(bytes, options: options)
        let value = try scanner.readValue()
        try scanner.expectEnd()
        return value
    }

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
    public mutating func peek() -> UInt8? {
        skipWhitespace()
        return position < bytes.count ? bytes[position] : nil
    }

    /// The kind of the next value, judged by its first byte: "object", "array", "string", "number", "boolean" or
    /// "null"; a syntax error where no value can start.
    public mutating func peekKind() throws(JSONSyntaxError) -> String {
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

    private mutating func expect(_ byte: UInt8) throws(JSONSyntaxError) {
        guard peek() == byte else {
            throw fail(position < bytes.count ? "expected '\(Character(Unicode.Scalar(byte)))'" : "unexpected end")
        }
        position += 1
    }

    /// Only whitespace may follow the top-level value.
    public mutating func expectEnd() throws(JSONSyntaxError) {
        if peek() != nil { throw fail("unexpected data after the top-level value") }
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > options.maxDepth { throw fail("nested deeper than \(options.maxDepth) levels") }
    }

    /// Reads `{...}`, calling `member` with each key once the scanner stands at the key's value; `member` must read
    /// exactly that value. `uniqueKeys` overrides the options for this object (a caller that reports repeats itself).
    public mutating func readObject(uniqueKeys: Bool? = nil,
                                    _ member: (inout JSONScanner, _ key: String, _ keyOffset: Int) throws -> Void)
        throws
    {
        try expect(UInt8(ascii: "{"))
        try enter()
        defer { depth -= 1 }
        var seen = Set<String>()
        if peek() == UInt8(ascii: "}") { position += 1; return }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyOffset = position
            let key = try readString()
            if uniqueKeys ?? options.rejectDuplicateKeys, !seen.insert(key).inserted {
                throw fail("duplicate key \"\(key)\"", at: keyOffset)
            }
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
    public mutating func readArray(_ element: (inout JSONScanner, _ index: Int) throws -> Void) throws {
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

    /// A string; runs without escapes are copied whole (vocabulary files hold hundreds of thousands of strings).
    public mutating func readString() throws(JSONSyntaxError) -> String {
        try expect(UInt8(ascii: "\""))
        var out: [UInt8] = []
        var runStart = position
        while true {
            guard position < bytes.count else { throw fail("unterminated string") }
            let b = bytes[position]
            if b == UInt8(ascii: "\"") {
                out.append(contentsOf: bytes[runStart..<position])
                position += 1
                return String(decoding: out, as: UTF8.self)
            }
            if b < 0x20 { throw fail("control character in a string") }
            guard b == UInt8(ascii: "\\") else { position += 1; continue }
            out.append(contentsOf: bytes[runStart..<position])
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
            runStart = position
        }
    }

    /// After `\u`: four hex digits, and a second `\uXXXX` for a surrogate pair.
    private mutating func readUnicodeEscape() throws(JSONSyntaxError) -> Unicode.Scalar {
        let start = position - 2
        func hex4(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> UInt32 {
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
        if (0xD800...0xDBFF).contains(first), position + 2 <= bytes.count, bytes[position] == UInt8(ascii: "\\"),
           bytes[position + 1] == UInt8(ascii: "u")
        {
            let save = position
            position += 2
            let second = try hex4(&self)
            if (0xDC00...0xDFFF).contains(second) {
                code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            } else {
                position = save  // the second escape is read on its own
            }
        }
        if let scalar = Unicode.Scalar(code) { return scalar }
        if options.rejectLoneSurrogates { throw fail("unpaired surrogate", at: start) }
        return "\u{FFFD}"
    }

    /// A number as written; its grammar is checked, its value is the caller's business.
    public mutating func readNumber() throws(JSONSyntaxError) -> String {
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

    /// What the member callbacks of `readValue` throw: only `JSONSyntaxError`s (they call nothing else).
    private static func syntaxError(_ error: any Error) -> JSONSyntaxError {
        error as? JSONSyntaxError ?? JSONSyntaxError(offset: 0, reason: "\(error)")
    }

    private mutating func readLiteral(_ word: String) throws(JSONSyntaxError) {
        let start = position
        for c in word.utf8 {
            guard position < bytes.count, bytes[position] == c else { throw fail("invalid value", at: start) }
            position += 1
        }
    }

    /// Any value, materialised.
    public mutating func readValue() throws(JSONSyntaxError) -> JSONValue {
        switch peek() {
        case UInt8(ascii: "{"):
            var members: [(key: String, value: JSONValue)] = []
            do {
                try readObject { scanner, key, _ in members.append((key, try scanner.readValue())) }
            } catch { throw Self.syntaxError(error) }
            return .object(members)
        case UInt8(ascii: "["):
            var elements: [JSONValue] = []
            do {
                try readArray { scanner, _ in elements.append(try scanner.readValue()) }
            } catch { throw Self.syntaxError(error) }
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
