import ArgumentParser
import FluxCore
import FluxModel
import Foundation

/// `--lora FILE[:SCALE]`, repeatable, on `generate`, `eval pipeline` and `eval transformer`. The files are read and
/// matched to the model's layers before any weight loads, so a LoRA that does not fit costs a second, not a load.
struct LoRAOptions: ParsableArguments {
    // Unconditional, so that a value such as `-style.safetensors` is taken as the file it names.
    @Option(name: .customLong("lora"), parsing: .unconditionalSingleValue, help: ArgumentHelp(
        "A LoRA file (.safetensors) and its scale, default 1; repeat for a stack, applied in the order given.",
        discussion: "Negative scales subtract the adapter. The scale is what follows the last ':' when it is a "
            + "number, so paths holding ':' work as they are. Formats: diffusers/PEFT, kohya, ComfyUI, BFL-named "
            + "PEFT, XLabs.",
        valueName: "file[:scale]"))
    var values: [String] = []

    /// How the LoRAs reach the model (`FluxPipeline.LoRAApplication`); all give the same numbers.
    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case merge, swap, beside
    }

    @Option(name: .customLong("lora-mode"), help: ArgumentHelp(
        "merge: into the weights as they load (no cost per step); swap: into copies made after loading, as the "
            + "service switches sets; beside: y = W·x + up·(down·x) at every step. For checking and measuring."))
    var mode: Mode = .merge

    var application: FluxPipeline.LoRAApplication {
        switch mode {
        case .merge: .merge
        case .swap: .runtime(.swap)
        case .beside: .runtime(.beside)
        }
    }

    /// The files opened and checked for form, in the order given; throws one line naming the argument and why.
    func stack() throws -> LoRAStack {
        LoRAStack(try values.map { text in
            let argument = try LoRAArgument(parsing: text)
            return LoRAStack.Entry(file: try argument.open(), scale: argument.scale)
        })
    }

    /// `stack()` matched to the model of `components` (its configs only, no weights): every module must name one of
    /// its linear layers with shapes that fit. Returns the stack that passed.
    func checkedStack(for components: PipelineComponents) throws -> LoRAStack {
        let stack = try stack()
        if !stack.isEmpty { try Self.check { try stack.check(against: components.loraTargets()) } }
        return stack
    }

    /// Runs a check whose `LoRAError` is reported as a `--lora` error.
    static func check<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as LoRAError {
            throw ValidationError("--lora \(error)")
        }
    }
}

/// One `--lora` value taken apart: `FILE`, or `FILE:SCALE` when what follows the last `:` is a number.
struct LoRAArgument: Equatable {
    let path: String
    let scale: Double

    init(parsing text: String) throws {
        if let colon = text.lastIndex(of: ":"), let value = Double(text[text.index(after: colon)...]) {
            guard value.isFinite else { throw ValidationError("--lora \(LoRAError.invalidScale(argument: text))") }
            (path, scale) = (String(text[..<colon]), value)
        } else {
            (path, scale) = (text, 1)
        }
        guard !path.isEmpty else { throw ValidationError("--lora \(text): no file before the scale") }
    }

    /// The file read and its keys checked for form (`LoRAFile.open`); errors name the path (and the key).
    func open() throws -> LoRAFile {
        guard FileManager.default.isReadableFile(atPath: path), !isFolder(path) else {
            throw ValidationError("--lora \(path): cannot be read (missing, a folder, or not readable)")
        }
        do { return try LoRAFile.open(path) } catch let error as LoRAError {
            throw ValidationError("--lora \(error)")
        } catch let error as SafetensorsError {
            throw ValidationError("--lora \(error) (a LoRA is a .safetensors file)")
        }
    }
}

extension LoRAStack {
    /// What PNG metadata records of each entry: name, SHA-256 and the user's scale.
    var records: [ImageMetadata.LoRARecord] {
        entries.map { ImageMetadata.LoRARecord(name: $0.file.name, sha256: $0.file.sha256, scale: $0.scale) }
    }

    /// `name (0.7), other (-0.5)`, for the `loaded …` line.
    var summary: String {
        entries.map { "\($0.file.name) (\(String(format: "%g", $0.scale)))" }.joined(separator: ", ")
    }
}
