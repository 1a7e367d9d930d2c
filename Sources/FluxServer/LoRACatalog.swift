import FluxCore
import FluxModel
import Foundation
import Logging

/// The LoRAs `fluxserve serve --lora-dir DIR` offers, read once at start-up: every `DIR/*.safetensors` (not
/// recursive), named by its file name without the extension. Clients choose adapters by these names only, never by a
/// path. Each file is opened (`LoRAFile.open`: form and SHA-256) and matched against the model
/// (`LoRAStack.check(against:)`); one that is not a LoRA or does not fit is logged and listed as unusable with the
/// reason, and the server starts anyway. The opened files are kept: a request never reads the directory again.
public final class LoRACatalog: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let path: String
        public let bytes: Int
        /// The file read as a LoRA; nil when it is not one this server reads.
        public let file: LoRAFile?
        /// Lower-case hex of the whole file (also for a file that is not a LoRA); nil when it cannot be read at all.
        public let sha256: String?
        /// Why the file cannot be used with this model; nil when it can.
        public let error: String?

        public var usable: Bool { error == nil && file != nil }
    }

    public let directory: String
    /// Sorted by name.
    public let entries: [Entry]
    private let byName: [String: Entry]

    /// Scans `directory`. `targets` are the model's (`ImageGenerator.loraTargets`); nil checks the files' form only.
    /// Throws only when the directory itself cannot be listed.
    public init(directory: String, targets: LoRATargets?, logger: Logger) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw LoRACatalogError.unreadableDirectory(path: directory, reason: "\(error.localizedDescription)")
        }
        var entries: [Entry] = []
        for fileName in names.sorted() where fileName.hasSuffix(".safetensors") {
            let entry = Self.read(directory: directory, fileName: fileName, targets: targets)
            if let error = entry.error {
                logger.warning("LoRA unusable", metadata: ["name": "\(entry.name)", "path": "\(entry.path)",
                                                           "error": "\(error)"])
            }
            entries.append(entry)
        }
        self.directory = directory
        self.entries = entries
        byName = Dictionary(entries.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        logger.info("LoRAs found", metadata: ["dir": "\(directory)", "usable": "\(entries.filter(\.usable).count)",
                                              "unusable": "\(entries.filter { !$0.usable }.count)"])
    }

    public func entry(_ name: String) -> Entry? { byName[name] }

    /// The stack a batch runs: each choice's cached file at its scale. Throws when a job's LoRA is gone or changed
    /// since it was submitted (a re-queued job after a restart with another directory).
    func stack(for choices: [LoRAChoice]) throws -> LoRAStack {
        LoRAStack(try choices.map { choice in
            guard let entry = byName[choice.name], let file = entry.file, entry.usable else {
                throw LoRACatalogError.unavailable(name: choice.name, reason: byName[choice.name] == nil
                    ? "it is not in \(directory)" : "it cannot be used: \(byName[choice.name]?.error ?? "unreadable")")
            }
            guard file.sha256 == choice.sha256 else {
                throw LoRACatalogError.unavailable(name: choice.name, reason: "the file changed since the job was "
                                                   + "submitted (SHA-256 \(choice.sha256.prefix(12))… → "
                                                   + "\(file.sha256.prefix(12))…)")
            }
            return LoRAStack.Entry(file: file, scale: choice.scale)
        })
    }

    /// A name a client may send and a file may have: not empty, at most 200 characters, no path separators, no
    /// `..`, not hidden, no control characters.
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 200 && !name.hasPrefix(".") && !name.contains("..")
            && !name.contains("/") && !name.contains("\\")
            && !name.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// One file: opened, hashed and matched to `targets`. Errors name the file by its name in the directory, not the
    /// server's path (clients see them in `GET /v1/loras`).
    private static func read(directory: String, fileName: String, targets: LoRATargets?) -> Entry {
        let name = String(fileName.dropLast(".safetensors".count))
        let path = URL(fileURLWithPath: directory).appendingPathComponent(fileName).path
        let bytes = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        func unusable(_ reason: String, file: LoRAFile? = nil) -> Entry {
            Entry(name: name, path: path, bytes: bytes, file: file, sha256: file?.sha256 ?? sha256(of: path),
                  error: reason.replacingOccurrences(of: path, with: fileName))
        }
        guard isPlainName(name) else {
            return unusable("the name is not plain (no leading '.', '..', '/', '\\' or control characters)")
        }
        let file: LoRAFile
        do { file = try LoRAFile.open(path) } catch { return unusable("\(error)") }
        if let targets {
            do { try LoRAStack([LoRAStack.Entry(file: file, scale: 1)]).check(against: targets) } catch {
                return unusable("\(error)", file: file)
            }
        }
        return Entry(name: name, path: path, bytes: bytes, file: file, sha256: file.sha256, error: nil)
    }

    private static func sha256(of path: String) -> String? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else { return nil }
        var hash = SHA256()
        data.withUnsafeBytes { hash.update($0) }
        return hash.finalizeHex()
    }
}

public enum LoRACatalogError: Error, CustomStringConvertible {
    case unreadableDirectory(path: String, reason: String)
    case unavailable(name: String, reason: String)

    public var description: String {
        switch self {
        case .unreadableDirectory(let path, let reason): "--lora-dir \(path): cannot list it: \(reason)"
        case .unavailable(let name, let reason): "LoRA \"\(name)\" is not available: \(reason)"
        }
    }
}
