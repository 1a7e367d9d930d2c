import Hummingbird
import HummingbirdAuth

/// Who made a request: the name of the API key that matched (`key-1`, …; never the key), or `anonymous` when the
/// server runs without keys. Idempotency keys are scoped by it.
public struct APIKeyIdentity: Sendable, Equatable {
    public let name: String
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
