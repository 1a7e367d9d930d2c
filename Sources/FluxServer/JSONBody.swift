import FluxCore
import FluxModel
import Foundation
import HTTPTypes
import Hummingbird

/// A request body type whose fields are known: anything else in the object is refused, so a typo (`step` for
/// `steps`) is an error, not a silently ignored setting. Each field's JSON kind is checked before decoding, so that a
/// wrong value is answered with the field's name and what it must be.
protocol StrictDecodable: Decodable {
    static var fields: [String: JSONField] { get }
}

/// What a request field holds in JSON. `null` is left to the decoder (absent for an optional field, an error for a
/// required one).
enum JSONField: Sendable {
    case string
    /// A whole number (1.0 counts; 1.5 does not).
    case integer
    /// Any JSON number.
    case number
    /// A whole number in 0…2^64 − 1 (`GenerationRules.seeds`).
    case seed
    /// An array of `{"name": string, "scale": number}` objects, `scale` optional (`LoRAChoice.Requested`).
    case loras

    var expected: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .number: "a number"
        case .seed: "an integer"
        case .loras: "an array of {\"name\": string, \"scale\": number} objects"
        }
    }
}

/// Reads and decodes JSON request bodies with errors a client can act on: 413 past the size limit; 400 for a body
/// that is not UTF-8, not JSON, not an object, has unknown fields, wrong types, or misses a required field.
enum JSONBody {
    /// The body, refusing more than `limit` bytes (by `Content-Length` up front, and while reading).
    static func read(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw tooLarge(limit)
        }
        var bytes: [UInt8] = []
        for try await chunk in request.body {
            guard bytes.count + chunk.readableBytes <= limit else { throw tooLarge(limit) }
            bytes += chunk.readableBytesView
        }
        return bytes
    }

    /// Whether `bytes` is a JSON object with the field `name` at its top level (false for anything else).
    static func hasTopLevelField(_ name: String, in bytes: [UInt8]) -> Bool {
        let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        return (object as? [String: Any])?[name] != nil
    }

    static func tooLarge(_ limit: Int) -> APIError {
        APIError(.contentTooLarge, "body_too_large", "request body larger than \(limit) bytes")
    }

    /// The body as `T`, in steps: not empty, UTF-8, JSON syntax, an object, only known fields, each field of its
    /// kind, then decoded.
    static func decode<T: StrictDecodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        guard !bytes.isEmpty else {
            throw APIError(.badRequest, "invalid_json", "request body is empty; expected a JSON object")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw APIError(.badRequest, "invalid_utf8", "request body is not valid UTF-8")
        }
        // The shared strict reader first: Foundation's parser takes trailing commas and keeps one of two equal keys.
        do {
            _ = try JSONScanner.parse(bytes, options: .strict)
        } catch {
            throw APIError(.badRequest, "invalid_json", "request body is not valid JSON: \(error)")
        }
        let data = Data(bytes)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw APIError(.badRequest, "invalid_json", "request body is not valid JSON")
        }
        guard let fields = object as? [String: Any] else {
            throw APIError(.badRequest, "invalid_json", "request body must be a JSON object")
        }
        if let unknown = fields.keys.sorted().first(where: { T.fields[$0] == nil }) {
            throw APIError(.badRequest, "unknown_field", "unknown field '\(unknown)'; accepted: "
                           + T.fields.keys.sorted().joined(separator: ", "), param: unknown)
        }
        for name in fields.keys.sorted() {
            if let kind = T.fields[name], let value = fields[name] { try check(value, of: name, is: kind) }
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw describe(error)
        }
    }

    /// Refuses a field value of the wrong JSON kind (400 `invalid_type`) or a whole number no field of its kind can
    /// hold (422 `invalid_value`, with the accepted range), naming the field.
    static func check(_ value: Any, of field: String, is kind: JSONField) throws {
        func wrongType() -> APIError {
            APIError(.badRequest, "invalid_type", "field '\(field)' must be \(kind.expected), got \(describe(value: value))",
                     param: field)
        }
        if value is NSNull { return }
        if kind == .string {
            guard value is String else { throw wrongType() }
            return
        }
        if kind == .loras { return try checkLoRAs(value, of: field) }
        guard let number = value as? NSNumber, !isBoolean(number) else { throw wrongType() }
        switch kind {
        case .string, .number, .loras:
            return
        case .integer:
            guard let whole = wholeNumber(number) else { throw wrongType() }
            guard whole.magnitude <= Double(Int.max) else {
                throw APIError.invalidValue(field, "\(field) is out of range, got \(number)")
            }
        case .seed:
            guard let whole = wholeNumber(number) else {
                throw APIError(.badRequest, "invalid_type",
                               "field 'seed' \(GenerationRules.seedRangeReason(got: "\(number)"))", param: field)
            }
            let fits = String(cString: number.objCType) == "Q" || (whole >= 0 && whole < 0x1p64)
            guard fits else {
                throw APIError.invalidValue(field, "\(field) \(GenerationRules.seedRangeReason(got: "\(number)"))")
            }
        }
    }

    /// `[{"name": "…", "scale": 0.8}, …]`: an array of objects with a string `name` and an optional number
    /// `scale`, nothing else; 400 naming the item or its field (`loras[1].scale`). Values are `LoRAChoice.resolve`'s.
    private static func checkLoRAs(_ value: Any, of field: String) throws {
        guard let items = value as? [Any] else {
            throw APIError(.badRequest, "invalid_type", "field '\(field)' must be \(JSONField.loras.expected), got "
                           + describe(value: value), param: field)
        }
        for (i, item) in items.enumerated() {
            let name = "\(field)[\(i)]"
            guard let object = item as? [String: Any] else {
                throw APIError(.badRequest, "invalid_type", "field '\(name)' must be an object {\"name\", \"scale\"}, "
                               + "got \(describe(value: item))", param: name)
            }
            if let unknown = object.keys.sorted().first(where: { $0 != "name" && $0 != "scale" }) {
                throw APIError(.badRequest, "unknown_field",
                               "unknown field '\(name).\(unknown)'; accepted: name, scale", param: "\(name).\(unknown)")
            }
            guard let loraName = object["name"], !(loraName is NSNull) else {
                throw APIError(.badRequest, "missing_field", "field '\(name).name' is required", param: "\(name).name")
            }
            try check(loraName, of: "\(name).name", is: .string)
            if let scale = object["scale"] { try check(scale, of: "\(name).scale", is: .number) }
        }
    }

    /// JSON `true`/`false` (Foundation gives them as NSNumber too).
    private static func isBoolean(_ number: NSNumber) -> Bool {
        type(of: number) == type(of: NSNumber(value: true)) || String(cString: number.objCType) == "c"
    }

    /// The number as a Double if it is whole (2, 2.0, 1e30), else nil (1.5).
    private static func wholeNumber(_ number: NSNumber) -> Double? {
        switch String(cString: number.objCType) {
        case "d", "f":
            let value = number.doubleValue
            return value.isFinite && value.rounded(.towardZero) == value ? value : nil
        case "Q":
            return Double(number.uint64Value)
        default:
            return Double(number.int64Value)
        }
    }

    /// What a JSON value is, for "got …".
    private static func describe(value: Any) -> String {
        switch value {
        case is String: return "a string"
        case let number as NSNumber: return isBoolean(number) ? "a boolean" : "\(number)"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        default: return "null"
        }
    }

    /// A decoding error as the field and what was wrong with it.
    static func describe(_ error: DecodingError) -> APIError {
        func path(_ context: DecodingError.Context, _ key: (any CodingKey)? = nil) -> String {
            let keys = context.codingPath + (key.map { [$0] } ?? [])
            return keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context):
            let field = path(context)
            return APIError(.badRequest, "invalid_type", "field '\(field)' must be \(describe(type))", param: field)
        case .valueNotFound(let type, let context):
            let field = path(context)
            return APIError(.badRequest, "invalid_type", "field '\(field)' must be \(describe(type)), not null",
                            param: field)
        case .keyNotFound(let key, let context):
            let field = path(context, key)
            return APIError(.badRequest, "missing_field", "field '\(field)' is required", param: field)
        case .dataCorrupted(let context):
            let field = path(context)
            // e.g. a number too large for its type, or 1.5 where an integer is expected.
            return APIError(.badRequest, "invalid_type", field.isEmpty
                ? "request body could not be decoded" : "field '\(field)' has a value of the wrong type or range",
                param: field.isEmpty ? nil : field)
        @unknown default:
            return APIError(.badRequest, "invalid_json", "request body could not be decoded")
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is UInt64.Type, is UInt32.Type, is Int32.Type: "an integer"
        case is Float.Type, is Double.Type: "a number"
        default: "of a different type"
        }
    }
}
