import Foundation

/// Generation settings a model is meant to run with: from the folder's `fluxserve.json` (`{"defaults": {...}}`) when
/// it has one, else by architecture — guidance-distilled (FLUX.1-dev: 28 steps, guidance 3.5, 512 T5 tokens) or not
/// (FLUX.1-schnell: 4 steps, no guidance, 256 tokens), 1024×1024 (diffusers' FluxPipeline defaults).
public struct PipelineDefaults: Codable, Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var steps: Int
    public var guidance: Float
    public var maxSequenceLength: Int

    enum CodingKeys: String, CodingKey {
        case width, height, steps, guidance, maxSequenceLength = "max_sequence_length"
    }

    public static let dev = PipelineDefaults(width: 1024, height: 1024, steps: 28, guidance: 3.5, maxSequenceLength: 512)
    public static let schnell = PipelineDefaults(width: 1024, height: 1024, steps: 4, guidance: 0, maxSequenceLength: 256)

    /// The defaults for a resolved model.
    public static func of(_ components: PipelineComponents) throws -> PipelineDefaults {
        let file = URL(fileURLWithPath: components.path).appendingPathComponent("fluxserve.json").path
        if let data = FileManager.default.contents(atPath: file) {
            struct Settings: Decodable { let defaults: PipelineDefaults }
            do { return try JSONDecoder().decode(Settings.self, from: data).defaults } catch {
                throw ModelError.invalidConfig(source: file, reason: "\(error)")
            }
        }
        return components.transformer.config.guidanceEmbeds ? .dev : .schnell
    }
}
