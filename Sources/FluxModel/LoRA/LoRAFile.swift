import FluxCore
import Foundation

/// One adapted module of a LoRA file: its low-rank pair and the scale that multiplies `up · down` at user scale 1.
public struct LoRAModule: Sendable {
    /// The module as stored, without its part (`lora_unet_double_blocks_0_img_attn_qkv`).
    public let key: String
    let address: LoRAAddress
    /// `diffusers`, `kohya`, `kohya_comfy`, `bfl_peft` or `xlabs`.
    public let format: String
    /// lora_A / lora_down (rank, in), and its key.
    public let down: HostTensor
    public let downKey: String
    /// lora_B / lora_up (rows, rank), and its key.
    public let up: HostTensor
    public let upKey: String
    /// The alpha the file gives this module (a tensor, `lora_adapter_metadata`, or diffusers' most common alpha);
    /// nil when it gives none.
    public let alpha: Double?
    /// alpha / rank (√rank with rsLoRA); 1 where the format has no alpha or the file gives none.
    public let scale: Double

    public var component: LoRAComponent { address.component }
    public var rank: Int { down.shape.first ?? 0 }
}

/// A LoRA file read and checked for form: every key is a part of a low-rank pair in one of the formats FLUX LoRAs
/// ship in (`LoRAKey`, `LoRAAddress`), or the file is refused naming the key. Whether the modules exist in a given
/// model is `LoRATargets`' question.
///
/// Alpha, per format (as diffusers 0.42.1 + peft read them; `tools/reference/README.md`, "LoRA fixtures"):
/// - kohya / ComfyUI (`lora_down`) and BFL-named PEFT: `<module>.alpha` / rank; none → 1.
/// - diffusers PEFT (`transformer.…lora_A`): the LoraConfig in `lora_adapter_metadata` if the file has one (alpha
///   and r from `alpha_pattern` / `rank_pattern` else `lora_alpha` / `r`, rsLoRA √r); else `.alpha` tensors, a
///   module without one taking the component's most common alpha; else 1.
/// - XLabs: 1 (the format has no alpha).
public struct LoRAFile: Sendable {
    public let path: String
    /// The file's name without `.safetensors`: how images and the service name it.
    public let name: String
    /// SHA-256 of the whole file, lower-case hex.
    public let sha256: String
    public let modules: [LoRAModule]

    /// Every format the modules are written in, joined with `+` (one, for files as trainers write them).
    public var format: String { Set(modules.map(\.format)).sorted().joined(separator: "+") }

    /// The components the file adapts.
    public var components: [LoRAComponent] { Set(modules.map(\.component)).sorted() }

    /// The same file with only the modules of `components` (`eval transformer` runs the transformer alone).
    public func restricted(to components: Set<LoRAComponent>) -> LoRAFile {
        LoRAFile(path: path, name: name, sha256: sha256, modules: modules.filter { components.contains($0.component) })
    }

    public static func open(_ path: String) throws -> LoRAFile {
        let file = try SafetensorsFile(path: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        var hash = SHA256()
        data.withUnsafeBytes { hash.update($0) }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return LoRAFile(path: path, name: name, sha256: hash.finalizeHex(),
                        modules: try readModules(file, label: path))
    }

    /// The pairs of `file`, scaled by the rules above.
    static func readModules(_ file: SafetensorsFile, label: String) throws -> [LoRAModule] {
        struct Pair {
            var down: String?, up: String?, alpha: String?, family: LoRAFamily?
        }
        var pairs: [String: Pair] = [:]
        for key in file.names {
            if let kind = LoRAKey.unsupportedKind(key) {
                throw LoRAError.unsupportedKind(file: label, key: key, kind: kind)
            }
            guard let parsed = LoRAKey(key) else {
                throw LoRAError.unrecognisedKey(file: label, key: key, reason:
                    "not a lora_A/lora_B, lora_down/lora_up, XLabs processor down/up or alpha tensor")
            }
            var pair = pairs[parsed.module] ?? Pair()
            switch parsed.part {
            case .down: pair.down = key
            case .up: pair.up = key
            case .alpha: pair.alpha = key
            }
            if let family = parsed.family {
                if let other = pair.family, other != family {
                    throw LoRAError.unrecognisedKey(file: label, key: key, reason: "its module mixes two formats")
                }
                pair.family = family
            }
            pairs[parsed.module] = pair
        }
        guard !pairs.isEmpty else { throw LoRAError.empty(file: label) }

        let config = try LoRAConfigMetadata(file.metadata, label: label)
        var found: [(module: String, address: LoRAAddress, format: String, pair: Pair, family: LoRAFamily,
                     down: HostTensor, up: HostTensor, alpha: Double?)] = []
        for (module, pair) in pairs.sorted(by: { $0.key < $1.key }) {
            guard let family = pair.family else {
                throw LoRAError.incomplete(file: label, key: pair.alpha ?? module, missing: "weights beside the alpha")
            }
            guard let downKey = pair.down else {
                throw LoRAError.incomplete(file: label, key: pair.up!, missing: "down matrix (lora_A / lora_down)")
            }
            guard let upKey = pair.up else {
                throw LoRAError.incomplete(file: label, key: downKey, missing: "up matrix (lora_B / lora_up)")
            }
            if family == .xlabs, let alphaKey = pair.alpha {
                throw LoRAError.unrecognisedKey(file: label, key: alphaKey, reason: "XLabs LoRAs have no alpha")
            }
            let down = try file.tensor(downKey), up = try file.tensor(upKey)
            guard down.shape.count == 2, down.shape[0] > 0 else {
                throw LoRAError.shape(file: label, key: downKey, shape: down.shape, expected: "(rank, in features)")
            }
            guard up.shape.count == 2, up.shape[1] == down.shape[0] else {
                throw LoRAError.shape(file: label, key: upKey, shape: up.shape,
                                      expected: "(out features, rank \(down.shape[0]))")
            }
            var alpha: Double?
            if let alphaKey = pair.alpha {
                let t = try file.tensor(alphaKey)
                guard t.count == 1, let value = t.floats().first, value.isFinite else {
                    throw LoRAError.shape(file: label, key: alphaKey, shape: t.shape, expected: "one finite number")
                }
                alpha = Double(value)
            }
            let (address, format) = LoRAAddress.of(module, family: family)
            found.append((module, address, format, pair, family, down, up, alpha))
        }

        // diffusers' PEFT files: metadata, else alpha tensors with the most common one for modules without.
        let diffusers = found.indices.filter { found[$0].family == .peft && found[$0].format == "diffusers" }
        if config != nil, let withAlpha = diffusers.first(where: { found[$0].alpha != nil }) {
            throw LoRAError.invalidMetadata(file: label, reason:
                "the file has both lora_adapter_metadata and alpha tensors (\(found[withAlpha].pair.alpha!))")
        }
        var commonAlpha: [LoRAComponent: Double] = [:]
        for component in LoRAComponent.allCases {
            let alphas = diffusers.filter { found[$0].address.component == component }.compactMap { found[$0].alpha }
            var counts: [Double: Int] = [:]
            for a in alphas { counts[a, default: 0] += 1 }
            // Ties go to the alpha seen first (Counter.most_common keeps first-seen order among equals).
            commonAlpha[component] = alphas.first { counts[$0] == counts.values.max() }
        }

        return try found.map { m in
            let rank = Double(m.down.shape[0])
            var alpha = m.alpha, scale = (m.alpha ?? rank) / rank
            if m.family == .peft && m.format == "diffusers" {
                if let config, let c = config.components[m.address.component] {
                    let r = Double(c.value(c.rankPattern, for: m.module) ?? c.r)
                    guard r == rank else {
                        throw LoRAError.invalidMetadata(file: label, reason:
                            "\(m.pair.down!) has rank \(Int(rank)); the LoraConfig says \(Int(r))")
                    }
                    let a = c.value(c.alphaPattern, for: m.module) ?? c.alpha
                    (alpha, scale) = (a, c.rsLoRA ? a / rank.squareRoot() : a / rank)
                } else if alpha == nil, let common = commonAlpha[m.address.component] {
                    (alpha, scale) = (common, common / rank)
                }
            }
            if m.family == .xlabs { scale = 1 }
            return LoRAModule(key: m.module, address: m.address, format: m.format, down: m.down,
                              downKey: m.pair.down!, up: m.up, upKey: m.pair.up!, alpha: alpha, scale: scale)
        }
    }
}

/// The LoraConfig diffusers' `save_lora_weights` writes into a file's metadata (`lora_adapter_metadata`), per
/// component: `{"transformer.r": 4, "transformer.lora_alpha": 8, "transformer.rank_pattern": {…}, …}`.
struct LoRAConfigMetadata {
    struct Component {
        var r = 8
        var alpha = 8.0
        var rankPattern: [(String, Int)] = []
        var alphaPattern: [(String, Double)] = []
        var rsLoRA = false

        /// peft's rule: the first pattern key that is the module's name or a suffix of it after a `.`.
        func value<T>(_ pattern: [(String, T)], for module: String) -> T? {
            pattern.first { module == $0.0 || module.hasSuffix("." + $0.0) }?.1
        }
    }

    var components: [LoRAComponent: Component] = [:]

    /// nil when the file has no `lora_adapter_metadata`.
    init?(_ metadata: [String: String], label: String) throws {
        guard let text = metadata["lora_adapter_metadata"] else { return nil }
        func bad(_ reason: String) -> LoRAError { .invalidMetadata(file: label, reason: reason) }
        let json: JSONValue
        do { json = try JSONScanner.parse(Array(text.utf8), options: .python) } catch {
            throw bad("\(error)")
        }
        guard case let .object(members) = json else { throw bad("not a JSON object") }
        func number(_ v: JSONValue, _ key: String) throws -> Double {
            guard case let .number(t) = v, let d = Double(t), d.isFinite else { throw bad("\(key) is not a number") }
            return d
        }
        for (key, value) in members {
            guard let dot = key.firstIndex(of: "."),
                  let component = LoRAComponent(rawValue: String(key[..<dot])) else { continue }
            var c = components[component] ?? Component()
            let field = String(key[key.index(after: dot)...])
            switch field {
            case "r":
                let r = try number(value, key)
                guard r >= 1, r == r.rounded() else { throw bad("\(key) is not a positive integer") }
                c.r = Int(r)
            case "lora_alpha": c.alpha = try number(value, key)
            case "use_rslora": if case let .bool(b) = value { c.rsLoRA = b }
            case "use_dora":
                if case .bool(true) = value {
                    throw LoRAError.unsupportedKind(file: label, key: "lora_adapter_metadata \(key)", kind: "DoRA")
                }
            case "rank_pattern", "alpha_pattern":
                guard case let .object(patterns) = value else {
                    if value.isNull { continue }
                    throw bad("\(key) is not an object")
                }
                for (module, v) in patterns {
                    let n = try number(v, "\(key).\(module)")
                    if field == "rank_pattern" { c.rankPattern.append((module, Int(n))) }
                    else { c.alphaPattern.append((module, n)) }
                }
            default: continue
            }
            components[component] = c
        }
    }
}
