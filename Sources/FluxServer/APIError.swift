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
