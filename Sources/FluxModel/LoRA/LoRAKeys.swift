/// The model component a LoRA module adapts.
public enum LoRAComponent: String, Sendable, CaseIterable, Codable, Comparable {
    case transformer
    /// CLIP text encoder (`lora_te1_`, `text_encoder.`, `text_encoders.clip_l.`).
    case clip = "text_encoder"
    /// T5 encoder (`lora_te2_`, `text_encoder_2.`, `text_encoders.t5xxl.`).
    case t5 = "text_encoder_2"

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// How a file spells a module's name.
enum LoRANaming: Sendable, Hashable {
    /// The reference names the model code uses: BFL's for the transformer (`double_blocks.0.img_attn.qkv`),
    /// transformers' for the encoders (`encoder.layers.0.self_attn.q_proj`).
    case reference
    /// diffusers' `FluxTransformer2DModel` names (`transformer_blocks.0.attn.to_q`): split q/k/v.
    case diffusers
    /// kohya sd-scripts: a reference name with its dots written as underscores (`double_blocks_0_img_attn_qkv`).
    case referenceUnderscored
    /// ai-toolkit's kohya-style files: diffusers names with underscores (`transformer_blocks_0_attn_to_q`).
    case diffusersUnderscored
    /// XLabs' attention processors (`double_blocks.0.processor.qkv_lora1`).
    case xlabs
}

/// Which convention wrote a pair, which decides how its alpha is read (`LoRAFile`).
enum LoRAFamily: Sendable {
    /// PEFT's `lora_A` / `lora_B` (diffusers, BFL-named PEFT).
    case peft
    /// kohya's `lora_down` / `lora_up` with an optional `alpha` beside them.
    case kohya
    /// XLabs' `down` / `up`, scale 1.
    case xlabs
}

/// A module named by a LoRA file: its component, how the name is spelled, and the name under that spelling.
struct LoRAAddress: Sendable, Hashable {
    let component: LoRAComponent
    let naming: LoRANaming
    let name: String
}

/// One tensor key of a LoRA file taken apart: `<module><part suffix>`.
struct LoRAKey: Sendable {
    enum Part: Sendable { case down, up, alpha }

    /// The key without its part suffix, as stored (`transformer.transformer_blocks.0.attn.to_q`).
    let module: String
    let part: Part
    /// nil for an `alpha`: its pair says.
    let family: LoRAFamily?

    private static let suffixes: [(String, Part, LoRAFamily?)] = [
        (".lora_A.weight", .down, .peft), (".lora_B.weight", .up, .peft),
        (".lora_down.weight", .down, .kohya), (".lora_up.weight", .up, .kohya),
        (".down.weight", .down, .xlabs), (".up.weight", .up, .xlabs),
        (".alpha", .alpha, nil),
    ]

    /// Key fragments of adapters that are not a low-rank pair, with their names for the error.
    static let unsupportedFragments: [(fragment: String, kind: String)] = [
        ("lora_magnitude_vector", "DoRA"), ("dora_scale", "DoRA"), (".lokr_", "LoKr"), (".hada_", "LoHa"),
        (".oft_", "OFT"), (".lora_mid.", "LoCon (Tucker)"),
    ]
    /// Key endings of whole-weight differences (`.diff` a weight, `.diff_b` a bias, norms' `.w_norm`/`.b_norm`).
    static let unsupportedSuffixes: [(suffix: String, kind: String)] = [
        (".diff", "full-difference"), (".diff_b", "full-difference"), (".w_norm", "norm-difference"),
        (".b_norm", "norm-difference"),
    ]

    /// The kind of a key that belongs to an unsupported adapter, if it is one.
    static func unsupportedKind(_ key: String) -> String? {
        unsupportedFragments.first { key.contains($0.fragment) }?.kind
            ?? unsupportedSuffixes.first { key.hasSuffix($0.suffix) }?.kind
    }

    /// The key taken apart, or nil when it ends in no known part (XLabs' bare `down`/`up` only under `processor`).
    init?(_ key: String) {
        for (suffix, part, family) in Self.suffixes where key.hasSuffix(suffix) {
            let module = String(key.dropLast(suffix.count))
            if family == .xlabs && !module.contains(".processor.") { continue }
            if module.isEmpty { return nil }
            (self.module, self.part, self.family) = (module, part, family)
            return
        }
        return nil
    }
}

extension LoRAAddress {
    /// Prefixes before a module name, longest first: the component and spelling they announce. Several trainers and
    /// UIs write the same format with their own prefix (ComfyUI's `diffusion_model.`, PEFT's `base_model.model.`).
    private static let prefixes: [(prefix: String, component: LoRAComponent, naming: LoRANaming)] = [
        ("text_encoders.clip_l.transformer.", .clip, .reference),
        ("text_encoders.t5xxl.transformer.", .t5, .reference),
        ("model.diffusion_model.", .transformer, .reference),
        ("diffusion_model.", .transformer, .reference),
        ("base_model.model.", .transformer, .reference),
        ("text_encoder_2.", .t5, .reference),
        ("text_encoder.", .clip, .reference),
        ("transformer.", .transformer, .diffusers),
        ("lora_transformer_", .transformer, .diffusersUnderscored),
        ("lora_unet_", .transformer, .referenceUnderscored),
        ("lora_te1_", .clip, .referenceUnderscored),
        ("lora_te2_", .t5, .referenceUnderscored),
        ("lora_te_", .clip, .referenceUnderscored),
    ]

    /// Where `module` (a key without its part) points, and the name of the format that spells it so.
    static func of(_ module: String, family: LoRAFamily) -> (address: LoRAAddress, format: String) {
        if family == .xlabs {
            let name = module.hasPrefix("diffusion_model.") ? String(module.dropFirst(16)) : module
            return (LoRAAddress(component: .transformer, naming: .xlabs, name: name), "xlabs")
        }
        let (prefix, component, naming) = prefixes.first { module.hasPrefix($0.prefix) }
            ?? ("", .transformer, .reference)
        var name = String(module.dropFirst(prefix.count))
        // CLIP names as older transformers wrote them (`text_model.encoder…`); the reference drops `text_model.`.
        for textModel in ["text_model.", "text_model_"] where component == .clip && name.hasPrefix(textModel) {
            name = String(name.dropFirst(textModel.count))
        }
        let format = switch (family, naming) {
        case (.kohya, .reference): "kohya_comfy"
        case (.kohya, _): "kohya"
        case (.peft, .reference) where component == .transformer: "bfl_peft"
        default: "diffusers"
        }
        return (LoRAAddress(component: component, naming: naming, name: name), format)
    }
}
