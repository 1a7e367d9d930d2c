import FluxModel
import Foundation

/// One LoRA a job runs with: a name from the server's catalog (`--lora-dir`, `GET /v1/loras`) and its scale. Kept
/// with the job (`JobStore`, column `loras`, JSON) so a re-queued job runs with the same adapters; `sha256` is the
/// file's at submission, so a file replaced under the same name before the job runs fails it instead of silently
/// running different weights.
public struct LoRAChoice: Codable, Sendable, Hashable {
    public var name: String
    /// Multiplies the file's own alpha / rank (`LoRAStack.Entry.scale`).
    public var scale: Double
    public var sha256: String

    public init(name: String, scale: Double, sha256: String) {
        (self.name, self.scale, self.sha256) = (name, scale, sha256)
    }

    /// Most adapters per request, and the largest |scale|: beyond either the image is noise, not a style.
    static let maxCount = 8
    static let maxScale = 8.0

    /// One item of a request's `loras`: `{"name": "…", "scale": 0.8}` (scale optional, default 1). The JSON shape is
    /// checked before decoding (`JSONField.loras`), so decoding this cannot fail.
    struct Requested: Codable, Sendable, Equatable {
        let name: String
        let scale: Double?
    }

    /// A request's `loras`, checked against the catalog: 422 `invalid_value` naming `loras`, `loras[i].name` or
    /// `loras[i].scale`. Absent or empty is no LoRA; without a catalog (no `--lora-dir`) any LoRA is refused.
    static func resolve(_ requested: [Requested]?, catalog: LoRACatalog?) throws -> [LoRAChoice] {
        guard let requested, !requested.isEmpty else { return [] }
        guard let catalog else {
            throw APIError.invalidValue("loras", "this server offers no LoRAs (it was started without --lora-dir)")
        }
        guard requested.count <= maxCount else {
            throw APIError.invalidValue("loras", "at most \(maxCount) LoRAs per request, got \(requested.count)")
        }
        var chosen: [LoRAChoice] = []
        for (i, item) in requested.enumerated() {
            let field = "loras[\(i)]"
            guard LoRACatalog.isPlainName(item.name) else {
                throw APIError.invalidValue("\(field).name", "\(field).name must be a LoRA's name as GET /v1/loras "
                                            + "lists it (no paths, no extension), got \"\(item.name.prefix(80))\"")
            }
            guard let entry = catalog.entry(item.name) else {
                throw APIError.invalidValue("\(field).name", "\(field).name: no LoRA named \"\(item.name)\"; "
                                            + "GET /v1/loras lists those this server offers")
            }
            guard let file = entry.file, entry.error == nil else {
                throw APIError.invalidValue("\(field).name", "\(field).name: LoRA \"\(item.name)\" cannot be used "
                                            + "with this model: \(entry.error ?? "unreadable")")
            }
            guard !chosen.contains(where: { $0.name == item.name }) else {
                throw APIError.invalidValue("\(field).name", "\(field).name: \"\(item.name)\" is given twice; give "
                                            + "it once with the summed scale")
            }
            let scale = item.scale ?? 1
            guard scale.isFinite, abs(scale) <= maxScale else {
                throw APIError.invalidValue("\(field).scale", "\(field).scale must be a number in "
                                            + "-\(Int(maxScale))…\(Int(maxScale)), got \(scale)")
            }
            chosen.append(LoRAChoice(name: item.name, scale: scale, sha256: file.sha256))
        }
        return chosen
    }
}

extension LoRAStack {
    /// Whether two stacks run the same adapters: the same files (name and SHA-256) at the same scales, in the same
    /// order (order changes the summation, hence the last bits of the result).
    func isSameSet(as other: LoRAStack) -> Bool {
        entries.count == other.entries.count && zip(entries, other.entries).allSatisfy { a, b in
            a.file.name == b.file.name && a.file.sha256 == b.file.sha256 && a.scale == b.scale
        }
    }

    /// `name:scale,…` for logs; "none" when empty.
    var summary: String {
        entries.isEmpty ? "none" : entries.map { "\($0.file.name):\($0.scale)" }.joined(separator: ",")
    }
}
