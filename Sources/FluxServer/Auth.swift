import FluxCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth

/// The accepted Bearer keys. Keys are compared in constant time (in the key's length, whatever the token) and never
/// logged; a key is known elsewhere only by its name, `key-N` in load order.
public struct APIKeys: Sendable {
    private let keys: [(name: String, bytes: [UInt8], digest: String)]

    public init(_ keys: [String]) {
        self.keys = keys.enumerated().map { index, key in
            ("key-\(index + 1)", Array(key.utf8), SHA256.hex(key))
        }
    }

    public var isEmpty: Bool { keys.isEmpty }
    public var count: Int { keys.count }

    /// Keys from `FLUXSERVE_API_KEYS` (separated by commas or white space) and from `file` (one per line; blank
    /// lines and lines starting with `#` skipped).
    public static func load(environment: [String: String], file: String?) throws -> [String] {
        var keys = (environment["FLUXSERVE_API_KEYS"] ?? "")
            .split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw APIKeysError.unreadable(file)
            }
            guard let text = String(data: data, encoding: .utf8) else { throw APIKeysError.notText(file) }
            keys += text.split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        for key in keys where key.utf8.count < 16 {
            throw APIKeysError.tooShort(length: key.utf8.count)
        }
        return keys
    }

    /// The identity whose key equals `token`. Every key is compared in full, so the time taken does not depend on
    /// which key matched or how much of one did.
    public func match(_ token: String) -> APIKeyIdentity? {
        let candidate = Array(token.utf8)
        var found: APIKeyIdentity?
        for key in keys where Self.constantTimeEquals(key.bytes, candidate) {
            found = APIKeyIdentity(name: key.name, keyDigest: key.digest)
        }
        return found
    }

    /// Equality whose running time depends on `secret.count` only.
    static func constantTimeEquals(_ secret: [UInt8], _ candidate: [UInt8]) -> Bool {
        var difference: UInt8 = secret.count == candidate.count ? 0 : 1
        let count = candidate.count
        for i in 0..<secret.count {
            // Reads candidate[i mod count] so the loop does the same work whether or not the lengths agree.
            let other = count > 0 ? candidate[i % count] : 0
            difference |= secret[i] ^ other
        }
        return difference == 0
    }
}

public enum APIKeysError: Error, CustomStringConvertible {
    case unreadable(String)
    case notText(String)
    case tooShort(length: Int)

    public var description: String {
        switch self {
        case .unreadable(let path): "API key file \(path): cannot be read"
        case .notText(let path): "API key file \(path): not UTF-8 text"
        case .tooShort(let length): "an API key of \(length) characters is too short (at least 16)"
        }
    }
}

/// Sets the request's identity from `Authorization: Bearer <key>` (hummingbird-auth's authenticator protocol).
struct BearerKeyAuthenticator: AuthenticatorMiddleware {
    typealias Context = FluxRequestContext
    let keys: APIKeys

    func authenticate(request: Request, context: Context) async throws -> APIKeyIdentity? {
        if keys.isEmpty { return .anonymous }
        guard let bearer = request.headers.bearer else { return nil }
        return keys.match(bearer.token)
    }
}

/// Answers 401 (with `WWW-Authenticate: Bearer`) when no key matched.
struct RequireIdentityMiddleware: RouterMiddleware {
    typealias Context = FluxRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard context.identity != nil else {
            let message = request.headers[.authorization] == nil
                ? "missing API key: send Authorization: Bearer <key>" : "invalid API key"
            throw APIError(.unauthorized, "unauthorized", message, headers: [.wwwAuthenticate: "Bearer"])
        }
        return try await next(request, context)
    }
}
