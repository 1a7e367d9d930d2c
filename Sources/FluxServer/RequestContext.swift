import Hummingbird
import HummingbirdAuth

/// Who made a request: the name of the API key that matched (`key-1`, …; never the key), or `anonymous` when the
/// server runs without keys. Idempotency keys are scoped by the name; jobs record the key's SHA-256 (`keyDigest`),
/// which stays the same when keys are reordered, and listing shows a key its own jobs.
public struct APIKeyIdentity: Sendable, Equatable {
    public let name: String
    /// Hex SHA-256 of the key; nil without authentication.
    public let keyDigest: String?

    public init(name: String, keyDigest: String? = nil) {
        (self.name, self.keyDigest) = (name, keyDigest)
    }

    public static let anonymous = APIKeyIdentity(name: "anonymous")
}

/// The per-request context: Hummingbird's core storage plus the authenticated identity.
public struct FluxRequestContext: AuthRequestContext, RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: APIKeyIdentity?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        identity = nil
    }
}
