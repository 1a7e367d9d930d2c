import Foundation
import HTTPTypes
import Hummingbird

/// A request body type whose fields are known: anything else in the object is refused, so a typo (`step` for
/// `steps`) is an error, not a silently ignored setting.
protocol StrictDecodable: Decodable {
    static var fields: Set<String> { get }
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

    static func tooLarge(_ limit: Int) -> APIError {
        APIError(.contentTooLarge, "body_too_large", "request body larger than \(limit) bytes")
    }

    static func decode<T: StrictDecodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        guard !bytes.isEmpty else {
            throw APIError(.badRequest, "invalid_json", "request body is empty; expected a JSON object")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw APIError(.badRequest, "invalid_utf8", "request body is not valid UTF-8")
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
        if let unknown = fields.keys.sorted().first(where: { !T.fields.contains($0) }) {
            throw APIError(.badRequest, "unknown_field", "unknown field '\(unknown)'; accepted: "
                           + T.fields.sorted().joined(separator: ", "), param: unknown)
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw describe(error)
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
