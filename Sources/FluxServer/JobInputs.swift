import FluxModel
import Foundation
import GRDB

/// Edit jobs' uploads: files under `<data-dir>/inputs/<job id>/` written before the job's row, read by the worker,
/// deleted with the job's results (or when it fails or is cancelled); and the row's edit columns (migration v3).
extension JobStore {
    /// `inputs/<job id>/`, where an edit job's uploads wait for the worker.
    func inputsDirectory(of jobID: String) -> URL {
        root.appendingPathComponent("inputs", isDirectory: true).appendingPathComponent(jobID, isDirectory: true)
    }

    /// Writes a job's uploads (`image`, `mask`) durably before its row exists; their paths relative to the data
    /// directory, for the row.
    func writeInputs(of jobID: String, image: [UInt8], mask: [UInt8]?) throws -> (image: String, mask: String?) {
        let directory = inputsDirectory(of: jobID)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let url = directory.appendingPathComponent(name)
            try Data(bytes).write(to: url, options: .atomic)
            let handle = try FileHandle(forUpdating: url)
            defer { try? handle.close() }
            try handle.synchronize()  // a 202 promises the job survives a crash, its inputs too
            return "inputs/\(jobID)/\(name)"
        }
        return (try write("image", image), try mask.map { try write("mask", $0) })
    }

    /// An input file by the path its row records (relative to the data directory, under `inputs/`).
    func readInput(_ path: String) throws -> [UInt8] {
        guard path.hasPrefix("inputs/"), !path.split(separator: "/").contains("..") else {
            throw StoreError.corruptRow(column: "input_image/input_mask", reason: "not under inputs/: \(path)")
        }
        guard let data = FileManager.default.contents(atPath: root.appendingPathComponent(path).path) else {
            throw StoreError.missingInput(path)
        }
        return Array(data)
    }

    func removeInputs(of jobID: String) {
        try? FileManager.default.removeItem(at: inputsDirectory(of: jobID))
    }

    /// Removes temporary files a killed process left behind.
    func removeTemporaryFiles() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: filesDirectory.path)) ?? []
        for name in names where name.hasPrefix(".") && name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(at: filesDirectory.appendingPathComponent(name))
        }
    }

    /// An edit job's `EditInput` from its columns; nil for text-to-image.
    static func editInput(_ row: Row) throws -> EditInput? {
        let modeName: String = row["mode"] ?? GenerationMode.textToImage.rawValue
        guard let mode = GenerationMode(rawValue: modeName) else {
            throw StoreError.corruptRow(column: "mode", reason: "unknown mode \(modeName)")
        }
        guard mode != .textToImage else { return nil }
        guard let rule = EditInput.maskRule(named: row["mask_rule"] ?? ""), let image: String = row["input_image"],
              let digest: String = row["input_image_sha256"], let width: Int = row["reference_width"],
              let height: Int = row["reference_height"] else {
            throw StoreError.corruptRow(column: "mask_rule/input_image/reference_*", reason: "missing for an edit")
        }
        return EditInput(mode: mode, maskRule: rule, imageSHA256: digest, maskSHA256: row["input_mask_sha256"],
                         referenceWidth: width, referenceHeight: height, imageFile: image, maskFile: row["input_mask"])
    }
}
