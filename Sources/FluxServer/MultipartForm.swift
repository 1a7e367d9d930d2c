import FluxCore
import Foundation
import HTTPTypes
import Hummingbird
import MultipartKit

/// A `multipart/form-data` body split into its parts by MultipartKit's parser, which only ever sees bytes already
/// read under the upload limit (`JSONBody.read`). Text parts are the request's fields; file parts (`image`,
/// `image[]`, `mask`) are kept as bytes.
struct MultipartForm {
    struct Part {
        let name: String
        /// Set for a file part (`Content-Disposition: …; filename="…"`).
        let filename: String?
        let bytes: [UInt8]
    }

    let parts: [Part]

    /// Whether a request's `Content-Type` is `multipart/form-data`.
    static func isMultipart(_ request: Request) -> Bool {
        request.headers[.contentType]?.lowercased().hasPrefix("multipart/form-data") ?? false
    }

    /// The body of `request`, refusing more than `limit` bytes (413), then parsed. A body that is not well-formed
    /// multipart (no boundary, no closing delimiter, a part without a name) is 400 `invalid_multipart`.
    static func read(_ request: Request, limit: Int) async throws -> MultipartForm {
        let contentType = request.headers[.contentType] ?? ""
        guard let boundary = boundary(in: contentType) else {
            throw invalid("Content-Type multipart/form-data needs a boundary parameter")
        }
        let body = try await JSONBody.read(request, limit: limit)
        return try parse(body, boundary: boundary)
    }

    static func parse(_ body: [UInt8], boundary: String) throws -> MultipartForm {
        // The parser stops quietly at the end of its input; a body cut short has no closing "--boundary--".
        let closing = Array("--\(boundary)--".utf8)
        guard body.count >= closing.count, body.firstRange(of: closing) != nil else {
            throw invalid("the body has no closing --\(boundary)-- delimiter (cut short?)")
        }
        let parser = MultipartParser(boundary: boundary)
        var parts: [Part] = [], headers: [(String, String)] = [], bytes: [UInt8] = []
        var missingName = false
        parser.onHeader = { name, value in headers.append((name, value)) }
        parser.onBody = { buffer in bytes += buffer.readableBytesView }
        parser.onPartComplete = {
            let disposition = headers.first { $0.0.lowercased() == "content-disposition" }?.1 ?? ""
            if let name = parameter("name", in: disposition) {
                parts.append(Part(name: name, filename: parameter("filename", in: disposition), bytes: bytes))
            } else {
                missingName = true
            }
            (headers, bytes) = ([], [])
        }
        do {
            try parser.execute(body)
        } catch {
            throw invalid("the body is not valid multipart/form-data")
        }
        guard !missingName else { throw invalid("a part has no Content-Disposition name") }
        return MultipartForm(parts: parts)
    }

    /// The text fields as a JSON object for `JSONBody.decode`, so that multipart requests get the same strict
    /// checks (unknown fields, kinds, ranges) as JSON ones. A field whose kind is a number is read as a JSON number
    /// when it looks like one and kept as text otherwise (then refused as the wrong kind, naming the field); `loras`
    /// is read as the JSON array it holds.
    /// `fileFields` are left out; a repeated text field is 400.
    func jsonObject(fields: [String: JSONField], fileFields: Set<String>) throws -> [UInt8] {
        var object: [String: Any] = [:]
        for part in parts where !fileFields.contains(part.name) {
            guard object[part.name] == nil else {
                throw APIError(.badRequest, "duplicate_field", "field '\(part.name)' is given more than once",
                               param: part.name)
            }
            guard let text = String(validating: part.bytes, as: UTF8.self) else {
                throw APIError(.badRequest, "invalid_utf8", "field '\(part.name)' is not valid UTF-8", param: part.name)
            }
            if fields[part.name] == .loras, (try? JSONScanner.parse(part.bytes, options: .strict)) != nil,
               let array = try? JSONSerialization.jsonObject(with: Data(text.utf8)), array is [Any] {
                object[part.name] = array  // `loras` holds the same JSON array as in a JSON body
            } else if let kind = fields[part.name], kind != .string,
               let number = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]),
               number is NSNumber {
                object[part.name] = number
            } else {
                object[part.name] = text
            }
        }
        return Array(try JSONSerialization.data(withJSONObject: object))
    }

    /// The parts named any of `names`, in order.
    func files(named names: Set<String>) -> [Part] { parts.filter { names.contains($0.name) } }

    static func invalid(_ reason: String) -> APIError {
        APIError(.badRequest, "invalid_multipart", "request body: \(reason)")
    }

    /// `boundary=…` of a Content-Type (quoted or not), 1…70 characters (RFC 2046).
    static func boundary(in contentType: String) -> String? {
        guard let value = parameter("boundary", in: contentType), (1...70).contains(value.utf8.count) else { return nil }
        return value
    }

    /// A `key=value` or `key="value"` parameter of a header value; keys compare case-insensitively.
    static func parameter(_ key: String, in header: String) -> String? {
        for item in header.split(separator: ";").dropFirst() {
            let pair = item.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == key else { continue }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }
}
