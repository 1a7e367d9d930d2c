/// Token ids and attention mask for one prompt, padded and truncated the way FluxPipeline asks for them
/// (`padding="max_length", truncation=True`): special tokens kept, pad id and mask 0 after the text.
public struct TokenizedText: Sendable, Equatable {
    public var inputIds: [Int32]
    public var attentionMask: [Int32]

    public init(inputIds: [Int32], attentionMask: [Int32]) {
        self.inputIds = inputIds
        self.attentionMask = attentionMask
    }
}

/// A text encoder's tokenizer.
public protocol TextTokenizer: Sendable {
    /// Ids as FluxPipeline gets them: special tokens added, the text truncated so that the whole sequence fits
    /// `maxLength`, then padded to exactly `maxLength` (see `SpecialTokenFrame.frame` for lengths below the count
    /// of special tokens).
    func encode(_ text: String, maxLength: Int) -> TokenizedText
    /// Ids of the text alone: no special tokens, no truncation, no padding.
    func tokenize(_ text: String) -> [Int32]
}

/// The special tokens a post-processor puts around the text, and the pad id.
struct SpecialTokenFrame: Sendable {
    var prefix: [Int32]
    var suffix: [Int32]
    var padId: Int32

    /// Truncates `content` on the right, adds the special tokens and pads on the right, as `tokenizers` does with
    /// `truncation=longest_first, padding=max_length`. Two corner cases follow transformers 5.24: `maxLength <= 0`
    /// means neither truncation nor padding, and a `maxLength` below the number of special tokens leaves the text
    /// untruncated (transformers refuses to truncate then and only warns).
    func frame(_ content: [Int32], maxLength: Int) -> TokenizedText {
        let added = prefix.count + suffix.count
        var body = content
        if maxLength > 0 && maxLength >= added && body.count > maxLength - added {
            body.removeLast(body.count - (maxLength - added))
        }
        var ids = prefix + body + suffix
        var mask = [Int32](repeating: 1, count: ids.count)
        if ids.count < maxLength {
            let pad = maxLength - ids.count
            ids.append(contentsOf: repeatElement(padId, count: pad))
            mask.append(contentsOf: repeatElement(0, count: pad))
        }
        return TokenizedText(inputIds: ids, attentionMask: mask)
    }
}
