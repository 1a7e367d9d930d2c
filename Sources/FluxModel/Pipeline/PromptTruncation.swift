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

extension FluxPipeline {
    /// The encoders that will cut `prompt` at `maxSequenceLength` (T5) and 77 (CLIP); empty when both read it all.
    public func truncations(of prompt: String, maxSequenceLength: Int) -> [PromptTruncation] {
        // maxLength 0: neither truncation nor padding, so the count is the prompt's whole length with its specials.
        let clipTokens = clipTokenizer.encode(prompt, maxLength: 0).inputIds.count
        let t5Tokens = t5Tokenizer.encode(prompt, maxLength: 0).inputIds.count
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
