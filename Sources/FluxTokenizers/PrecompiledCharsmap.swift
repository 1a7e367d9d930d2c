/// SentencePiece's compiled normalization rules (`precompiled_charsmap` of spiece.model, or of a tokenizer.json
/// `Precompiled` normalizer), applied the way `tokenizers` applies them (spm_precompiled + `precompiled.rs`).
///
/// Blob layout: little-endian u32 byte size of the trie, the trie (a Darts double array of u32 units), then the
/// replacement strings, each ended by a NUL byte. A trie key is the UTF-8 of the text to replace; its value is
/// the byte offset of the replacement.
struct PrecompiledCharsmap: Sendable {
    private let units: [UInt32]
    private let replacements: [UInt8]

    struct FormatError: Error {
        var reason: String
    }

    init(_ blob: [UInt8]) throws(FormatError) {
        guard blob.count >= 4 else { throw FormatError(reason: "precompiled_charsmap shorter than its header") }
        let trieBytes = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard trieBytes <= blob.count - 4 else {
            throw FormatError(reason: "precompiled_charsmap trie of \(trieBytes) bytes overruns the blob")
        }
        let unitCount = trieBytes / 4
        guard unitCount > 0 else { throw FormatError(reason: "precompiled_charsmap has an empty trie") }
        var units = [UInt32](repeating: 0, count: unitCount)
        for i in 0..<unitCount {
            let at = 4 + 4 * i
            units[i] = UInt32(blob[at]) | UInt32(blob[at + 1]) << 8 | UInt32(blob[at + 2]) << 16
                | UInt32(blob[at + 3]) << 24
        }
        let rest = Array(blob[(4 + 4 * unitCount)...])
        guard String(validating: rest, as: UTF8.self) != nil else {
            throw FormatError(reason: "precompiled_charsmap replacements are not UTF-8")
        }
        self.units = units
        self.replacements = rest
    }

    // Darts unit fields.
    private static func hasLeaf(_ unit: UInt32) -> Bool { (unit >> 8) & 1 == 1 }
    private static func value(_ unit: UInt32) -> Int { Int(unit & 0x7FFF_FFFF) }
    private static func label(_ unit: UInt32) -> UInt32 { unit & (0x8000_0000 | 0xFF) }
    private static func offset(_ unit: UInt32) -> Int { Int((unit >> 10) << ((unit & (1 << 9)) >> 6)) }

    /// The replacement for `key` as spm_precompiled's `transform` finds it: the value of the SHORTEST prefix of
    /// the key that is in the trie (not necessarily the whole key), or nil if no prefix is. A NUL byte ends the key.
    func replacement(for key: some Collection<UInt8>) -> ArraySlice<UInt8>? {
        var node = 0
        guard node < units.count else { return nil }
        node ^= Self.offset(units[node])
        for byte in key {
            if byte == 0 { break }
            node ^= Int(byte)
            guard node >= 0 && node < units.count else { return nil }
            let unit = units[node]
            if Self.label(unit) != UInt32(byte) { return nil }
            node ^= Self.offset(unit)
            if Self.hasLeaf(unit) {
                guard node >= 0 && node < units.count else { return nil }
                let start = Self.value(units[node])
                guard start <= replacements.count else { return nil }
                var end = start
                while end < replacements.count && replacements[end] != 0 { end += 1 }
                return replacements[start..<end]
            }
        }
        return nil
    }

    /// `tokenizers`' Precompiled normalizer: each extended grapheme cluster shorter than 6 UTF-8 bytes is looked
    /// up whole; if that finds nothing (or the cluster is longer), each of its scalars is looked up on its own and
    /// kept unchanged when absent.
    func normalize(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for cluster in text {
            let bytes = Array(cluster.utf8)
            if bytes.count < 6, let replaced = replacement(for: bytes) {
                out.append(contentsOf: replaced)
                continue
            }
            for scalar in cluster.unicodeScalars {
                let scalarBytes = Array(String(scalar).utf8)
                if let replaced = replacement(for: scalarBytes) {
                    out.append(contentsOf: replaced)
                } else {
                    out.append(contentsOf: scalarBytes)
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
