/// Weight names of the FLUX transformer, written once.
///
/// The model addresses weights by the Black Forest Labs names (`flux1-dev.safetensors`: `double_blocks.0.img_attn.qkv`,
/// ...). Diffusers stores the same numbers under other names, with q/k/v (and the single blocks' MLP input) as
/// separate linears and the final modulation's halves swapped; this is the inverse of diffusers'
/// `convert_flux_transformer_checkpoint_to_diffusers` (`loaders/single_file_utils.py`).
public enum FluxKeyMap {
    /// Every reference (BFL) weight name a transformer of `config` has (`FluxTransformer.expectedWeights`; empty for
    /// a config the transformer rejects).
    public static func referenceNames(for config: FluxConfig) -> [String] {
        referenceShapes(for: config).map(\.name)
    }

    /// Every reference (BFL) weight with its shape, in the order the transformer asks for them — recorded from the
    /// module tree, not kept here (`FluxTransformer.expectedWeights`); empty for a config the transformer rejects.
    public static func referenceShapes(for config: FluxConfig) -> [(name: String, shape: [Int])] {
        ((try? FluxTransformer.expectedWeights(for: config)) ?? []).map { ($0.name, $0.shape) }
    }

    /// BFL names stored as they are, with an optional prefix (ComfyUI files use `model.diffusion_model.`).
    public static func bflRecipe(prefix: String) -> @Sendable (String) -> WeightRecipe {
        { .rename(prefix + $0) }
    }

    /// Where diffusers stores the weight the reference calls `name`.
    @Sendable public static func diffusersRecipe(_ name: String) -> WeightRecipe {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2 else { return .rename(name) }
        let leaf = parts.last!  // weight, bias or scale
        func tail(_ n: Int) -> String { parts.dropFirst(n).joined(separator: ".") }

        switch parts[0] {
        case "img_in": return .rename("x_embedder." + tail(1))
        case "txt_in": return .rename("context_embedder." + tail(1))
        case "time_in", "vector_in", "guidance_in":
            let embedder = ["time_in": "timestep_embedder", "vector_in": "text_embedder",
                            "guidance_in": "guidance_embedder"][parts[0]]!
            let layer = parts[1] == "in_layer" ? "linear_1" : parts[1] == "out_layer" ? "linear_2" : parts[1]
            return .rename("time_text_embed.\(embedder).\(layer).\(tail(2))")
        case "final_layer":
            if parts[1] == "linear" { return .rename("proj_out." + tail(2)) }
            if parts[1] == "adaLN_modulation" { return .swapHalves("norm_out.linear." + tail(3)) }
        case "double_blocks" where parts.count >= 4:
            let p = "transformer_blocks.\(parts[1])."
            let module = parts[2..<(parts.count - 1)].joined(separator: ".")
            let stream = [
                "img_mod.lin": ["norm1.linear"], "txt_mod.lin": ["norm1_context.linear"],
                "img_attn.qkv": ["attn.to_q", "attn.to_k", "attn.to_v"],
                "txt_attn.qkv": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
                "img_attn.proj": ["attn.to_out.0"], "txt_attn.proj": ["attn.to_add_out"],
                "img_mlp.0": ["ff.net.0.proj"], "img_mlp.2": ["ff.net.2"],
                "txt_mlp.0": ["ff_context.net.0.proj"], "txt_mlp.2": ["ff_context.net.2"],
                "img_attn.norm.query_norm": ["attn.norm_q"], "img_attn.norm.key_norm": ["attn.norm_k"],
                "txt_attn.norm.query_norm": ["attn.norm_added_q"], "txt_attn.norm.key_norm": ["attn.norm_added_k"],
            ][module]
            if let stream { return recipe(stream.map { p + $0 }, leaf: leaf) }
        case "single_blocks" where parts.count >= 4:
            let p = "single_transformer_blocks.\(parts[1])."
            let module = parts[2..<(parts.count - 1)].joined(separator: ".")
            let stored = [
                "linear1": ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"], "linear2": ["proj_out"],
                "modulation.lin": ["norm.linear"],
                "norm.query_norm": ["attn.norm_q"], "norm.key_norm": ["attn.norm_k"],
            ][module]
            if let stored { return recipe(stored.map { p + $0 }, leaf: leaf) }
        default: break
        }
        return .rename(name)
    }

    /// Rows of each stored part of a joined weight (`diffusersRecipe`'s `.concat`): q, k and v have `hidden` rows
    /// each; the last part takes the rest (v, or a single block's MLP input `proj_mlp` after q, k, v).
    public static func partRows(count: Int, total: Int, hidden: Int) -> [Int] {
        guard count > 0 else { return [] }
        return Array(repeating: hidden, count: count - 1) + [total - hidden * (count - 1)]
    }

    /// One stored module or several joined along axis 0; BFL's norm `scale` is diffusers' RMSNorm `weight`.
    private static func recipe(_ modules: [String], leaf: String) -> WeightRecipe {
        let storedLeaf = leaf == "scale" ? "weight" : leaf
        let names = modules.map { "\($0).\(storedLeaf)" }
        return names.count == 1 ? .rename(names[0]) : .concat(names)
    }
}
