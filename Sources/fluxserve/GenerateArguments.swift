import ArgumentParser
import FluxModel
import Foundation

/// `--seed`: 0…2^64 − 1, or -1 (as A1111 and stable-diffusion.cpp spell it) / nothing for a random seed.
enum SeedArgument {
    static func resolve(_ text: String?) throws -> UInt64 {
        guard let text, text.trimmingCharacters(in: .whitespaces) != "-1" else { return UInt64.random(in: 0..<(1 << 32)) }
        do {
            return try GenerationRules.seed(parsing: text)
        } catch {
            throw ValidationError("--seed \(text): \(error.reason), or -1 for a random seed")
        }
    }
}

extension GenerationRules {
    /// The shared value rules (the service applies the same ones), with each refusal naming the command-line flag;
    /// sides on whole latent patches of the model (`sideMultiple`, 16 for FLUX's VAE).
    static func commandLine(_ request: GenerationRequest, sideMultiple: Int = 16) throws {
        do {
            try GenerationRules(sideMultiple: sideMultiple).check(request)
        } catch {
            let flag: String = switch error.parameter {
            case .prompt: "the prompt"
            case .width: "--width \(request.width)"
            case .height: "--height \(request.height)"
            case .steps: "--steps \(request.steps)"
            case .guidance: "--guidance \(request.guidanceScale)"
            case .seed: "--seed \(request.seed)"
            case .cacheThreshold: "--cache-threshold \(request.cacheThreshold)"
            case .imageCount: "--num-images \(request.imagesPerPrompt)"
            case .strength: "--strength \(request.strength.map { "\($0)" } ?? "")"
            case .trueCFGScale: "--true-cfg-scale \(request.trueCFGScale)"
            case .negativePrompt: "--negative-prompt"
            }
            throw ValidationError("\(flag): \(error.reason)")
        }
        guard request.maxSequenceLength >= 1 else {
            throw ValidationError("--max-sequence-length \(request.maxSequenceLength): must be at least 1")
        }
    }
}

/// The PNG files `generate` writes, checked before anything is loaded: a `.png` name, a folder that exists and can
/// be written, never a folder where a file should go. Existing files are replaced, and said so.
struct OutputFiles {
    let paths: [String]

    /// `path` for one image; `NAME-1.png` … `NAME-N.png` for `count` of them.
    init(_ path: String, count: Int) throws {
        guard path.lowercased().hasSuffix(".png") else {
            throw ValidationError("--output \(path): expected a .png file name")
        }
        guard count >= 1 else { throw ValidationError("--num-images \(count): must be at least 1") }
        let url = URL(fileURLWithPath: path)
        paths = count == 1 ? [path]
            : (1...count).map { url.deletingPathExtension().path + "-\($0)." + url.pathExtension }
        let folder = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
            throw ValidationError("--output \(path): the folder \(folder) does not exist")
        }
        guard isDirectory.boolValue else { throw ValidationError("--output \(path): \(folder) is not a folder") }
        guard FileManager.default.isWritableFile(atPath: folder) else {
            throw ValidationError("--output \(path): the folder \(folder) is not writable")
        }
        for file in paths {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: file, isDirectory: &isFolder), isFolder.boolValue {
                throw ValidationError("--output \(file): is a folder")
            }
        }
    }

    /// One stderr line per file that is there already.
    func announceReplacements() {
        for file in paths where FileManager.default.fileExists(atPath: file) { printError("replacing \(file)") }
    }

    /// Writes image `index` atomically (a temporary file, then a rename), so a failed write never leaves half a PNG.
    func write(_ data: Data, index: Int) throws {
        do {
            try data.write(to: URL(fileURLWithPath: paths[index]), options: .atomic)
        } catch {
            throw ValidationError("\(paths[index]): cannot write: \((error as NSError).localizedDescription)")
        }
    }
}
