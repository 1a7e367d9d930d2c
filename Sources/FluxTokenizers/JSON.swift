/// A parsed JSON document. Numbers keep their text so that a score parses with `Double(String)`, correctly
/// rounded, the same way everywhere (Foundation's JSONSerialization returns NSDecimalNumber on Linux, whose
/// conversion to Double may be off by an ulp).
enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    subscript(key: String) -> JSONValue? {
        if case let .object(members) = self { return members[key] }
        return nil
    }

    var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

struct JSONSyntaxError: Error, CustomStringConvertible {
    var offset: Int
    var reason: String
    var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// A strict RFC 8259 parser over UTF-8 bytes (no comments, no trailing commas).
struct JSONParser {
    private let bytes: [UInt8]
    private var at = 0
    private var depth = 0

    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        // A UTF-8 byte order mark is tolerated, as Python's json.load with utf-8-sig would.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.at = 3 }
        let value = try parser.value()
        parser.skipSpace()
        guard parser.at == bytes.count else { throw parser.error("unexpected data after the document") }
        return value
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private func error(_ reason: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: at, reason: reason)
    }

    private mutating func skipSpace() {
        while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 {
            at += 1
        }
    }

    private mutating func value() throws -> JSONValue {
        skipSpace()
        guard at < bytes.count else { throw error("unexpected end of data") }
        switch bytes[at] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard at + count <= bytes.count else { throw error("unexpected end of data") }
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
        for i in 0..<count where bytes[at + i] != expected[i] {
            throw error("unexpected character")
        }
        at += count
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= 512 else { throw error("nesting deeper than 512") }
    }

    private mutating func object() throws -> JSONValue {
        try enter()
        at += 1
        var members: [String: JSONValue] = [:]
        skipSpace()
        if at < bytes.count, bytes[at] == UInt8(ascii: "}") {
            at += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try string()
            skipSpace()
            guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw error("expected ':'") }
            at += 1
            members[key] = try value()
            skipSpace()
            guard at < bytes.count else { throw error("unexpected end of data") }
            if bytes[at] == UInt8(ascii: ",") {
                at += 1
            } else if bytes[at] == UInt8(ascii: "}") {
                at += 1
                depth -= 1
                return .object(members)
            } else {
                throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func array() throws -> JSONValue {
        try enter()
        at += 1
        var elements: [JSONValue] = []
        skipSpace()
        if at < bytes.count, bytes[at] == UInt8(ascii: "]") {
            at += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            elements.append(try value())
            skipSpace()
            guard at < bytes.count else { throw error("unexpected end of data") }
            if bytes[at] == UInt8(ascii: ",") {
                at += 1
            } else if bytes[at] == UInt8(ascii: "]") {
                at += 1
                depth -= 1
                return .array(elements)
            } else {
                throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func number() throws -> String {
        let start = at
        if bytes[at] == UInt8(ascii: "-") { at += 1 }
        func digits(_ parser: inout JSONParser) -> Int {
            let first = parser.at
            while parser.at < parser.bytes.count, (0x30...0x39).contains(parser.bytes[parser.at]) { parser.at += 1 }
            return parser.at - first
        }
        guard digits(&self) > 0 else { throw error("expected digits") }
        if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
            at += 1
            guard digits(&self) > 0 else { throw error("expected digits after '.'") }
        }
        if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
            at += 1
            if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw error("expected exponent digits") }
        }
        return String(decoding: bytes[start..<at], as: UTF8.self)
    }

    private mutating func hex4() throws -> UInt32 {
        guard at + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[at]
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: throw error("bad hex digit in \\u escape")
            }
            value = value << 4 | digit
            at += 1
        }
        return value
    }

    private mutating func string() throws -> String {
        at += 1  // opening quote
        var out: [UInt8] = []
        var runStart = at
        while true {
            guard at < bytes.count else { throw error("unterminated string") }
            let c = bytes[at]
            if c == UInt8(ascii: "\"") {
                out.append(contentsOf: bytes[runStart..<at])
                at += 1
                break
            }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") {
                at += 1
                continue
            }
            out.append(contentsOf: bytes[runStart..<at])
            at += 1
            guard at < bytes.count else { throw error("unterminated escape") }
            let escape = bytes[at]
            at += 1
            switch escape {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code), at + 1 < bytes.count, bytes[at] == UInt8(ascii: "\\"),
                   bytes[at + 1] == UInt8(ascii: "u") {
                    let save = at
                    at += 2
                    let low = try hex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        at = save
                    }
                }
                // A lone surrogate becomes U+FFFD, as a lossy UTF-8 decoder would.
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw error("unknown escape")
            }
            runStart = at
        }
        // Invalid UTF-8 inside a string is repaired with U+FFFD rather than refused.
        return String(decoding: out, as: UTF8.self)
    }
}
