import FluxCore
import Foundation

/// Which FLUX.1 family member a checkpoint is, for what it does with an input image: the base models (dev, schnell
/// and fine-tunes) do img2img and inpainting; FLUX.1 Fill takes the masked image and mask as extra input channels;
/// FLUX.1 Kontext reads the image as extra tokens and edits by instruction.
public enum ModelVariant: String, Sendable, CaseIterable, Codable {
    case base, fill, kontext

    /// The diffusers pipeline class that runs it (what `model_index.json` names).
    public var pipelineClass: String {
        switch self {
        case .base: "FluxPipeline"
        case .fill: "FluxFillPipeline"
        case .kontext: "FluxKontextPipeline"
        }
    }

    /// From a pipeline folder's `model_index.json` `_class_name`. FluxImg2ImgPipeline, FluxInpaintPipeline and the
    /// others built on the base weights are `.base`; an unreadable file is an error, an unknown class is `.base`.
    static func of(modelIndex path: String) throws -> ModelVariant {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.missingFile(path: path, expected: "model_index.json")
        }
        let value: JSONValue
        do { value = try JSONScanner.parse(Array(data), options: .python) } catch {
            throw ModelError.invalidConfig(source: path, reason: "not JSON: \(error)")
        }
        guard case .object = value else { throw ModelError.invalidConfig(source: path, reason: "not a JSON object") }
        guard case let .string(name)? = value["_class_name"] else { return .base }
        if name.hasPrefix("FluxFill") { return .fill }
        if name.hasPrefix("FluxKontext") { return .kontext }
        return .base
    }

    /// For a single-file transformer, which carries no pipeline class: Fill's input is wider than its output
    /// (latents + masked-image latents + mask); Kontext has the base shape, so it is known by its file name
    /// (`flux1-kontext-dev.safetensors`) unless the caller says otherwise.
    static func of(singleFile path: String, config: FluxConfig) -> ModelVariant {
        if config.outChannels.map({ $0 != config.inChannels }) ?? false { return .fill }
        let name = URL(fileURLWithPath: path).lastPathComponent.lowercased()
        return name.contains("kontext") ? .kontext : .base
    }
}
