import FluxCore
import FluxModel
import Foundation

/// What `fluxserve inspect` says of a LoRA file: its format, size and hash, and per component the modules it adapts
/// (grouped by block), their ranks, alphas and the scales alpha / rank gives them; with `--model`, whether it fits.
struct LoRAReport: Codable {
    struct Component: Codable {
        /// `transformer`, `text_encoder` (CLIP) or `text_encoder_2` (T5).
        var name: String
        var modules: Int
        /// Distinct values, ascending.
        var ranks: [Int]
        /// Distinct alphas the file gives, ascending; `modulesWithoutAlpha` count those that give none.
        var alphas: [Double]
        var modulesWithoutAlpha: Int
        /// Distinct alpha / rank (√rank for rsLoRA, 1 for XLabs), ascending.
        var scales: [Double]
        var blocks: [BlockGroup]
    }

    /// Modules of numbered blocks, as the file spells them: `lora_unet_double_blocks` 0…1 × `img_attn_qkv`, ….
    /// Modules outside numbered blocks have `block` = their whole name, `indices` = [] and `modules` = [].
    struct BlockGroup: Codable {
        var block: String
        var indices: [Int]
        var modules: [String]
    }

    struct Fit: Codable {
        var model: String
        var fits: Bool
        /// The `LoRAError` line when it does not fit.
        var problem: String?
    }

    var path: String
    var format: String
    var bytes: Int
    var sha256: String
    var components: [Component]
    var fit: Fit?

    init(_ file: LoRAFile) {
        path = file.path
        format = file.format
        bytes = ((try? FileManager.default.attributesOfItem(atPath: file.path)[.size]) as? Int) ?? 0
        sha256 = file.sha256
        components = file.components.map { component in
            let modules = file.modules.filter { $0.component == component }
            return Component(name: component.rawValue, modules: modules.count,
                             ranks: Set(modules.map(\.rank)).sorted(),
                             alphas: Set(modules.compactMap(\.alpha)).sorted(),
                             modulesWithoutAlpha: modules.filter { $0.alpha == nil }.count,
                             scales: Set(modules.map(\.scale)).sorted(),
                             blocks: Self.groups(modules.map(\.key)))
        }
    }

    /// Whether `key`-spelled names of a safetensors file's tensors say it is a LoRA (or another adapter, which
    /// `LoRAFile.open` then refuses by name) rather than a model checkpoint.
    static func isAdapter(_ path: String) -> Bool {
        guard !isFolder(path), let file = try? SafetensorsFile(path: path) else { return false }
        let adapterWords = ["lora", "lokr_", "hada_", "dora_scale", "oft_"]
        guard file.names.contains(where: { name in adapterWords.contains { name.lowercased().contains($0) } }) else {
            return false
        }
        // A model checkpoint is inspected as one, whatever its tensor names mention.
        guard let checkpoint = try? SafetensorsCheckpoint(path: path) else { return true }
        return CheckpointReport.kind(of: checkpoint) == nil
    }

    /// Module keys grouped by block: the part before a block's number (after a `…blocks`/`…layers`/`block`/`layer`
    /// word), the numbers, and the rest; modules that cover the same numbers share a line.
    static func groups(_ keys: [String]) -> [BlockGroup] {
        var byBlock: [String: [String: Set<Int>]] = [:], order: [String] = [], loose: [String] = []
        for key in keys {
            guard let part = split(key) else { loose.append(key); continue }
            if byBlock[part.block] == nil { order.append(part.block) }
            byBlock[part.block, default: [:]][part.rest, default: []].insert(part.index)
        }
        var result: [BlockGroup] = []
        for block in order {
            var byIndices: [[Int]: [String]] = [:]
            for (rest, indices) in byBlock[block]! { byIndices[indices.sorted(), default: []].append(rest) }
            for (indices, modules) in byIndices.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                result.append(BlockGroup(block: block, indices: indices, modules: modules.sorted()))
            }
        }
        return result + loose.sorted().map { BlockGroup(block: $0, indices: [], modules: []) }
    }

    /// `lora_unet_double_blocks_0_img_attn_qkv` → (`lora_unet_double_blocks`, 0, `img_attn_qkv`); nil without a
    /// numbered block. Only a number after a block word counts (`text_encoder_2.` is a component, not a block).
    static func split(_ key: String) -> (block: String, index: Int, rest: String)? {
        var start = key.startIndex
        var previous = ""
        while start < key.endIndex {
            let end = key[start...].firstIndex(where: { $0 == "." || $0 == "_" }) ?? key.endIndex
            let token = key[start..<end]
            if let index = Int(token), ["blocks", "layers", "block", "layer"].contains(previous),
               start > key.startIndex, end < key.endIndex {
                return (String(key[..<key.index(before: start)]), index, String(key[key.index(after: end)...]))
            }
            previous = String(token)
            start = end < key.endIndex ? key.index(after: end) : end
        }
        return nil
    }

    /// The report as `inspect` prints it.
    func render() -> String {
        var lines = [path, "  LoRA: \(format), \(formatBytes(bytes)), sha256 \(sha256)"]
        for c in components {
            let alphas = c.alphas.map(Self.number) + (c.modulesWithoutAlpha > 0 ? ["none"] : [])
            lines.append("  \(c.name): \(c.modules) modules; rank \(c.ranks.map(String.init).joined(separator: ", "))"
                + "; alpha \(alphas.joined(separator: ", ")); scale \(c.scales.map(Self.number).joined(separator: ", "))")
            for group in c.blocks {
                lines.append(group.indices.isEmpty ? "    \(group.block)"
                    : "    \(group.block) \(Self.ranges(group.indices)): \(group.modules.joined(separator: ", "))")
            }
        }
        if let fit { lines.append(fit.fits ? "  fits \(fit.model)" : "  does not fit \(fit.model)") }
        return lines.joined(separator: "\n")
    }

    /// [0, 1, 2, 5] → `0–2, 5`.
    static func ranges(_ values: [Int]) -> String {
        var parts: [String] = [], i = 0
        while i < values.count {
            var j = i
            while j + 1 < values.count && values[j + 1] == values[j] + 1 { j += 1 }
            parts.append(j == i ? "\(values[i])" : "\(values[i])–\(values[j])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }

    static func number(_ value: Double) -> String { String(format: "%g", value) }
}
