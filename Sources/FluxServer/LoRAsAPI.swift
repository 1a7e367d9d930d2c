import FluxModel
import Foundation
import Hummingbird

/// `GET /v1/loras`: the adapters of `--lora-dir` that requests may name in `loras`, with what each is (format,
/// components, ranks, alphas) and whether it fits this model; an unusable file says why. Empty without
/// `--lora-dir`. The same key rule as `/v1/models`.
struct LoRAsAPI {
    let runtime: ServerRuntime

    struct LoRA: Encodable {
        let name: String
        /// `diffusers`, `kohya`, `kohya_comfy`, `bfl_peft`, `xlabs` (joined with `+` when mixed); nil when the file
        /// is not a LoRA.
        let format: String?
        /// `transformer`, `text_encoder` (CLIP), `text_encoder_2` (T5).
        let components: [String]
        /// Distinct ranks and alphas of its modules, ascending (a module without alpha adds none).
        let ranks: [Int]
        let alphas: [Double]
        let modules: Int
        let sha256: String?
        let bytes: Int
        let usable: Bool
        let error: String?

        init(_ entry: LoRACatalog.Entry) {
            let modules = entry.file?.modules ?? []
            name = entry.name
            format = entry.file?.format
            components = (entry.file?.components ?? []).map(\.rawValue)
            ranks = Set(modules.map(\.rank)).sorted()
            alphas = Set(modules.compactMap(\.alpha)).sorted()
            self.modules = modules.count
            sha256 = entry.sha256
            bytes = entry.bytes
            usable = entry.usable
            error = entry.error
        }
    }

    struct LoRAList: Encodable {
        let object = "list"
        let data: [LoRA]
    }

    func register(authenticated: RouterGroup<FluxRequestContext>, routes: RouteTable) {
        let list = LoRAList(data: (runtime.loras?.entries ?? []).map(LoRA.init))
        routes.add(authenticated, .get, "/v1/loras", isPublic: false) { _, _ in
            try jsonResponse(list)
        }
    }
}
