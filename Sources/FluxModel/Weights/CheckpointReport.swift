import FluxCore
import Foundation

/// What a checkpoint holds, as `fluxserve inspect` reports it.
public struct CheckpointReport: Codable, Sendable {
    /// Tensor statistics of one component (a pipeline subfolder, or the file itself).
    public struct Component: Codable, Sendable {
        public var name: String
        public var files: Int
        public var tensors: Int
        public var parameters: Int
        public var bytes: Int
        /// dtype → number of tensors.
        public var dtypes: [String: Int]
    }

    /// The transformer architecture found, and how the stored names match it.
    public struct Transformer: Codable, Sendable {
        public var variant: String
        public var configSource: String
        public var config: FluxConfig
        public var missing: [String]
        public var unexpected: [String]
    }

    public var path: String
    public var layout: CheckpointLayout
    public var components: [Component]
    public var transformer: Transformer?
    /// Why the checkpoint cannot be loaded; empty when it can.
    public var problems: [String]

    public var isLoadable: Bool { problems.isEmpty }

    /// Inspects a file or folder. Only unreadable input throws; a readable but incomplete checkpoint is reported with
    /// its problems.
    public static func inspect(_ path: String, config override: FluxConfig? = nil) throws -> CheckpointReport {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError.missingFile(path: path, expected: "a checkpoint file or folder")
        }
        var report = CheckpointReport(path: path, layout: .unknown, components: [], transformer: nil, problems: [])
        if isDirectory.boolValue {
            let url = URL(fileURLWithPath: path)
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("model_index.json").path) {
                report.layout = .diffusersPipeline
                let subfolders = (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? []
                for name in subfolders {
                    let folder = url.appendingPathComponent(name).path
                    guard containsSafetensors(folder) else { continue }
                    report.components.append(component(name, try SafetensorsCheckpoint(path: folder)))
                }
                if !subfolders.contains("transformer") { report.problems.append("no transformer/ folder") }
            } else if containsSafetensors(path) {
                report.components.append(component(url.lastPathComponent, try SafetensorsCheckpoint(path: path)))
            }
        } else {
            report.components.append(component(URL(fileURLWithPath: path).lastPathComponent,
                                               try SafetensorsCheckpoint(path: path)))
        }
        do {
            let checkpoint = try TransformerCheckpoint.open(path, config: override)
            if report.layout == .unknown { report.layout = checkpoint.layout }
            let missing = checkpoint.missingWeights()
            report.transformer = Transformer(
                variant: checkpoint.variant,
                configSource: override != nil ? "given" : checkpoint.layout == .bflSingleFile
                    ? "inferred from tensor shapes" : "config.json",
                config: checkpoint.config, missing: missing, unexpected: checkpoint.unexpectedTensors())
            if !missing.isEmpty { report.problems.append("\(missing.count) transformer weights missing") }
            for (name, shape) in FluxKeyMap.referenceShapes(for: checkpoint.config) where !missing.contains(name) {
                let stored = checkpoint.weights.shape(name)
                if stored != shape {
                    report.problems.append("\(name): shape \(stored.map { "\($0)" } ?? "of unjoinable parts"), expected \(shape)")
                }
            }
        } catch let error as ModelError {
            report.problems.append(error.description)
        }
        return report
    }

    private static func containsSafetensors(_ folder: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).contains { $0.hasSuffix(".safetensors") }
    }

    private static func component(_ name: String, _ checkpoint: SafetensorsCheckpoint) -> Component {
        var c = Component(name: name, files: checkpoint.files.count, tensors: 0, parameters: 0, bytes: 0, dtypes: [:])
        for tensorName in checkpoint.names {
            guard let info = checkpoint.info(tensorName) else { continue }
            c.tensors += 1
            c.parameters += info.shape.reduce(1, *)
            c.bytes += info.byteRange.count
            c.dtypes[info.dtype.rawValue, default: 0] += 1
        }
        return c
    }
}
