import Foundation
import Hummingbird

/// `GET /v1/models` and `GET /v1/models/{id}`, as OpenAI answers them: the one model this server runs. Front-ends
/// (Open WebUI, LibreChat, SDKs) probe it before they send work. The same key rule as every other `/v1` route.
struct ModelsAPI {
    let runtime: ServerRuntime

    /// OpenAI's model object. `created` is when this server started (the model has no date of its own here).
    struct Model: Encodable {
        let id: String
        let object = "model"
        let created: Int
        let ownedBy = "fluxserve"

        enum CodingKeys: String, CodingKey {
            case id, object, created, ownedBy = "owned_by"
        }
    }

    struct ModelList: Encodable {
        let object = "list"
        let data: [Model]
    }

    func register(authenticated: RouterGroup<FluxRequestContext>, routes: RouteTable) {
        let model = Model(id: runtime.generator.modelName, created: Int(runtime.startedAt.timeIntervalSince1970))
        routes.add(authenticated, .get, "/v1/models", isPublic: false) { _, _ in
            try jsonResponse(ModelList(data: [model]))
        }
        routes.add(authenticated, .get, "/v1/models/{id}", isPublic: false) { _, context in
            guard context.parameters.get("id") == model.id else {
                throw APIError(.notFound, "model_not_found", "model '\(context.parameters.get("id")?.prefix(100) ?? "")' "
                               + "not found; this server runs '\(model.id)'", param: "model")
            }
            return try jsonResponse(model)
        }
    }
}
