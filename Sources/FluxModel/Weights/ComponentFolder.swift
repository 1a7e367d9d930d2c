import Foundation

/// Finds one model component's own folder (config.json + weights) from what a user names — shared by every
/// component's checkpoint loader.
enum ComponentFolder {
    /// Where a component lives: its own folder, and whether it was reached through a pipeline's `model_index.json`.
    struct Location {
        let folder: String
        let inPipeline: Bool
    }

    /// `path` may be a diffusers pipeline folder (`model_index.json`; the component sits in `component/`), the
    /// component's own folder (with `config.json`), or a folder that holds `component/`. Returns nil for a file, which
    /// the caller reads as a single-file checkpoint; throws for a missing path or a folder of none of these kinds.
    static func locate(_ path: String, component: String, what: String) throws -> Location? {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError.missingFile(path: path, expected: "a pipeline folder, or a \(what) file or folder")
        }
        guard isDirectory.boolValue else { return nil }
        let url = URL(fileURLWithPath: path)
        let inner = url.appendingPathComponent(component).path
        if fm.fileExists(atPath: url.appendingPathComponent("model_index.json").path) {
            guard fm.fileExists(atPath: inner) else {
                throw ModelError.missingFile(path: inner, expected: "the pipeline's \(what) folder")
            }
            return Location(folder: inner, inPipeline: true)
        }
        if fm.fileExists(atPath: url.appendingPathComponent("config.json").path) {
            return Location(folder: path, inPipeline: false)
        }
        if fm.fileExists(atPath: inner) { return try locate(inner, component: component, what: what) }
        throw ModelError.unknownLayout(path: path, reason:
            "a folder without model_index.json (pipeline), config.json (\(what)) or \(component)/")
    }

    static func configPath(_ folder: String) -> String {
        URL(fileURLWithPath: folder).appendingPathComponent("config.json").path
    }
}
