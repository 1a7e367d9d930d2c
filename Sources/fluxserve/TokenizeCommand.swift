import ArgumentParser
import FluxTokenizers
import Foundation

/// `fluxserve tokenize --model M --encoder clip|t5 [--max-length N] TEXT`: the ids and mask a FLUX text encoder
/// gets for TEXT, padded and truncated as FluxPipeline does, as one JSON line.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids and attention mask a FLUX text encoder gets for a prompt.")

    enum Encoder: String, ExpressibleByArgument, CaseIterable {
        case clip, t5
    }

    @Option(help: "A pipeline folder (its tokenizer/ or tokenizer_2/ is used), a tokenizer folder, a Hugging Face id in the local cache, or 'demo'.")
    var model: String

    @Option(help: "clip (tokenizer/, 77 ids) or t5 (tokenizer_2/).")
    var encoder: Encoder

    @Option(help: "Ids to pad or truncate to (default: 77 for clip; 512 for t5, as FLUX.1-dev; schnell uses 256).")
    var maxLength: Int?

    @Argument(help: "The prompt.")
    var text: String

    func validate() throws {
        if let maxLength, maxLength < 1 {
            throw ValidationError("--max-length must be at least 1, got \(maxLength)")
        }
    }

    func run() throws {
        let result: TokenizedText = try reportingErrors {
            let model = try ModelLocator().path(for: self.model)
            switch encoder {
            case .clip:
                let tokenizer = try CLIPTokenizer(directory: tokenizerFolder(model, subfolder: "tokenizer"))
                return tokenizer.encode(text, maxLength: maxLength ?? CLIPTokenizer.defaultMaxLength)
            case .t5:
                let tokenizer = try T5Tokenizer(directory: tokenizerFolder(model, subfolder: "tokenizer_2"))
                return tokenizer.encode(text, maxLength: maxLength ?? 512)
            }
        }
        let ids = result.inputIds.map(String.init).joined(separator: ", ")
        let mask = result.attentionMask.map(String.init).joined(separator: ", ")
        print("{\"input_ids\": [\(ids)], \"attention_mask\": [\(mask)]}")
    }

    /// `model/subfolder` when the model is a pipeline folder holding it, else the model folder itself.
    private func tokenizerFolder(_ model: String, subfolder: String) -> String {
        let candidate = (model as NSString).appendingPathComponent(subfolder)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), isDirectory.boolValue {
            return candidate
        }
        return model
    }
}
