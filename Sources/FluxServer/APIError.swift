import FluxModel
import Foundation
import HTTPTypes
import Hummingbird

/// An error answered as `{"error": {"code", "message", "type", "param"}}`: the shape OpenAI clients parse (`type`,
/// `param`) with our stable `code`.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    /// Stable, machine-readable: `invalid_json`, `unknown_field`, `queue_full`, …
    public let code: String
    public let message: String
    /// The request field at fault, when there is one.
    public var param: String?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, param: String? = nil,
                headers: HTTPFields = [:]) {
        (self.status, self.code, self.message, self.param, self.headers) = (status, code, message, param, headers)
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// OpenAI's error `type` for a status.
    var type: String {
        switch status.code {
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 429: "rate_limit_error"
        case 500...: "server_error"
        default: "invalid_request_error"
        }
    }

    struct Body: Encodable {
        struct Detail: Encodable {
            let code: String
            let message: String
            let type: String
            let param: String?

            enum CodingKeys: String, CodingKey { case code, message, type, param }

            // `param` is written as null when absent, as OpenAI does: clients index `error.param` unconditionally.
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(code, forKey: .code)
                try container.encode(message, forKey: .message)
                try container.encode(type, forKey: .type)
                try container.encode(param, forKey: .param)
            }
        }
        let error: Detail
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        try jsonResponse(Body(error: .init(code: code, message: message, type: type, param: param)),
                         status: status, headers: headers)
    }

    // Errors used in several places.
    static func invalidValue(_ param: String, _ message: String) -> APIError {
        APIError(.unprocessableContent, "invalid_value", message, param: param)
    }
    /// A value a `GenerationRules` check refused, under the request field that holds it (width and height are
    /// both in `size`; the image count is OpenAI's `n`).
    static func invalidValue(_ error: GenerationRuleError) -> APIError {
        let field: String
        switch error.parameter {
        case .prompt: field = "prompt"
        case .width, .height: field = "size"
        case .steps: field = "steps"
        case .guidance: field = "guidance"
        case .seed: field = "seed"
        case .cacheThreshold: field = "cache_threshold"
        case .imageCount: field = "n"
        case .strength: field = "strength"
        case .trueCFGScale: field = "true_cfg_scale"
        case .negativePrompt: field = "negative_prompt"
        }
        let name = error.parameter == .width || error.parameter == .height ? error.parameter.rawValue : field
        return invalidValue(field, "\(name) \(error.reason)")
    }
    static func notFound(_ what: String) -> APIError { APIError(.notFound, "not_found", "\(what) not found") }
    static var shuttingDown: APIError {
        APIError(.serviceUnavailable, "shutting_down", "the server is shutting down; retry on another replica",
                 headers: [.retryAfter: "5"])
    }

    /// Our form of an error Hummingbird or a library raised (unknown route, parser limits, …). Never a 500 for
    /// anything the client sent.
    static func from(_ error: any Error) -> APIError? {
        switch error {
        case let error as APIError:
            return error
        case let error as HTTPError:
            let message = error.body ?? error.status.reasonPhrase
            switch error.status.code {
            case 404: return APIError(.notFound, "route_not_found", "no such route", headers: error.headers)
            case 413: return APIError(.contentTooLarge, "body_too_large", message, headers: error.headers)
            case 401: return APIError(.unauthorized, "unauthorized", message, headers: error.headers)
            default:
                return APIError(error.status, error.status.code < 500 ? "bad_request" : "internal_error", message,
                                headers: error.headers)
            }
        case let error as any HTTPResponseError:
            return APIError(error.status, error.status.code < 500 ? "bad_request" : "internal_error",
                            error.status.reasonPhrase)
        default:
            return nil
        }
    }
}

/// The encoder for every JSON answer: stable key order, URLs unescaped.
let responseEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
}()

/// A JSON response for `value`.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws
    -> Response
{
    var fields = headers
    fields[.contentType] = "application/json"
    let data = try responseEncoder.encode(value)
    return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
