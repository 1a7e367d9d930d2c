import FluxTokenizers

/// A text encoder that cannot read a whole prompt: FluxPipeline cuts the token ids at `limit` (special tokens
/// included), as diffusers does, and says so instead of dropping words silently.
public struct PromptTruncation: Sendable, Equatable, Codable {
    /// `clip` (77 tokens) or `t5` (the request's max sequence length).
    public let encoder: String
    /// The prompt's length in that encoder's tokens, special tokens included.
    public let tokens: Int
    /// The ids the encoder gets.
    public let limit: Int

    public init(encoder: String, tokens: Int, limit: Int) {
        (self.encoder, self.tokens, self.limit) = (encoder, tokens, limit)
    }

    /// One line for people: "the prompt is 93 CLIP tokens; CLIP reads the first 77".
    public var message: String {
        "the prompt is \(tokens) \(encoder.uppercased()) tokens; \(encoder.uppercased()) reads the first \(limit), "
            + "the rest is ignored"
    }
}

/// Counts a prompt's tokens the way the two text encoders will see it, to say which of them cut it. Holds only the
/// tokenizers, so a service can answer before (and apart from) the model's weights.
public struct PromptTokenCounter: Sendable {
    let clip: CLIPTokenizer
    let t5: T5Tokenizer

    public init(clip: CLIPTokenizer, t5: T5Tokenizer) { (self.clip, self.t5) = (clip, t5) }

    /// The tokenizers of a resolved model.
    public init(_ components: PipelineComponents) throws {
        self.init(clip: try CLIPTokenizer(directory: components.tokenizer),
                  t5: try T5Tokenizer(directory: components.tokenizer2))
    }

    /// The encoders that will cut `prompt` at `maxSequenceLength` (T5) and 77 (CLIP); empty when both read it all.
    public func truncations(of prompt: String, maxSequenceLength: Int) -> [PromptTruncation] {
        // maxLength 0: neither truncation nor padding, so the count is the prompt's whole length with its specials.
        let clipTokens = clip.encode(prompt, maxLength: 0).inputIds.count
        let t5Tokens = t5.encode(prompt, maxLength: 0).inputIds.count
        var cut: [PromptTruncation] = []
        if clipTokens > CLIPTokenizer.defaultMaxLength {
            cut.append(PromptTruncation(encoder: "clip", tokens: clipTokens, limit: CLIPTokenizer.defaultMaxLength))
        }
        if t5Tokens > maxSequenceLength {
            cut.append(PromptTruncation(encoder: "t5", tokens: t5Tokens, limit: maxSequenceLength))
        }
        return cut
    }
}

extension PromptTruncation {
    /// `clip 93>77; t5 600>512`: the form of the PNG chunk and the service's response header.
    public static func summary(_ cuts: [PromptTruncation]) -> String {
        cuts.map { "\($0.encoder) \($0.tokens)>\($0.limit)" }.joined(separator: "; ")
    }
}

extension FluxPipeline {
    /// The encoders that will cut `prompt` (see `PromptTokenCounter`).
    public func truncations(of prompt: String, maxSequenceLength: Int) -> [PromptTruncation] {
        PromptTokenCounter(clip: clipTokenizer, t5: t5Tokenizer).truncations(of: prompt,
                                                                             maxSequenceLength: maxSequenceLength)
    }
}
