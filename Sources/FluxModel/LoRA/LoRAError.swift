/// Why a LoRA file cannot be used with a model. Every case names the file and the key, so that no part of a LoRA is
/// ever dropped without a word (the most common LoRA complaint against other engines).
public enum LoRAError: Error, CustomStringConvertible, Equatable {
    /// A key this reader does not understand (no known format's pattern).
    case unrecognisedKey(file: String, key: String, reason: String)
    /// An adapter that is not a low-rank pair: LoKr, LoHa, DoRA, OFT, full weight differences.
    case unsupportedKind(file: String, key: String, kind: String)
    /// A module the file names that the model does not have (or that is not a linear layer).
    case noSuchModule(file: String, key: String, module: String, model: String)
    /// A tensor whose shape does not fit its module, or the other half of its pair.
    case shape(file: String, key: String, shape: [Int], expected: String)
    /// One half of a pair without the other (`lora_A` without `lora_B`, an `alpha` without weights).
    case incomplete(file: String, key: String, missing: String)
    /// `lora_adapter_metadata` that is not the LoraConfig diffusers writes, or contradicts the tensors.
    case invalidMetadata(file: String, reason: String)
    /// No LoRA tensors at all.
    case empty(file: String)
    /// A `FILE[:SCALE]` argument or a scale that is not a finite number.
    case invalidScale(argument: String)

    public var description: String {
        switch self {
        case let .unrecognisedKey(file, key, reason): "\(file): LoRA key \(key): \(reason)"
        case let .unsupportedKind(file, key, kind):
            "\(file): LoRA key \(key): \(kind) adapters are not supported (only low-rank lora_A/lora_B pairs)"
        case let .noSuchModule(file, key, module, model): "\(file): LoRA key \(key): \(model) has no linear layer \(module)"
        case let .shape(file, key, shape, expected): "\(file): LoRA key \(key) has shape \(shape), expected \(expected)"
        case let .incomplete(file, key, missing): "\(file): LoRA key \(key) has no \(missing)"
        case let .invalidMetadata(file, reason): "\(file): lora_adapter_metadata: \(reason)"
        case let .empty(file): "\(file): no LoRA tensors (lora_A/lora_B, lora_down/lora_up or XLabs down/up)"
        case let .invalidScale(argument): "\(argument): a LoRA scale must be a finite number (FILE[:SCALE])"
        }
    }
}
