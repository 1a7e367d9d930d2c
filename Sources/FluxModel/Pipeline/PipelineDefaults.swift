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

/// The small model that ships with FluxServe (`--model demo`): a diffusers pipeline folder, `models/demo/` in the
/// source tree, loaded through the same loader as any checkpoint.
public enum DemoModel {
    public static let name = "demo"

    /// Where the demo folder is: `$FLUXSERVE_DEMO_MODEL`, next to the executable (`demo-model/` or
    /// `../share/fluxserve/demo-model/`), or the source checkout this program was built from.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment,
                              executable: String = CommandLine.arguments.first ?? "") throws -> String {
        var candidates: [String] = []
        if let explicit = environment["FLUXSERVE_DEMO_MODEL"] { candidates.append(explicit) }
        let binDir = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(binDir.appendingPathComponent("demo-model").path)
        candidates.append(binDir.appendingPathComponent("../share/fluxserve/demo-model").standardized.path)
        // Sources/FluxModel/Pipeline/PipelineDefaults.swift → the checkout's models/demo.
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(checkout.appendingPathComponent("models/demo").path)
        for path in candidates
        where FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("model_index.json").path) {
            return path
        }
        throw ModelError.missingFile(path: candidates.joined(separator: ", "), expected:
            "the demo model folder (set FLUXSERVE_DEMO_MODEL to models/demo of the FluxServe source)")
    }
}
