import Foundation

/// Weight names of `AutoencoderKL`, written once.
///
/// The model addresses weights by the diffusers names (`decoder.up_blocks.0.resnets.1.norm1.weight`), because its
/// structure is diffusers' (up blocks in the order they run, `quant_conv` optional). The LDM layout, which Black
/// Forest Labs' `ae.safetensors` and Stable Diffusion single files (under `first_stage_model.`) use, numbers the
/// decoder's levels by resolution (`decoder.up.0` runs last) and stores the attention projections as 1×1 convolutions
/// (C, C, 1, 1); `ldmName` is the inverse of diffusers' `convert_ldm_vae_checkpoint` (`loaders/single_file_utils.py`).
public enum VAEKeyMap {
    /// Every diffusers weight name an `AutoencoderKL` of `config` has in `parts`, with its shape (attention
    /// projections as linears (C, C)) — recorded from the module tree, not kept here
    /// (`AutoencoderKL.expectedWeights`); empty for a config the autoencoder rejects.
    public static func referenceShapes(for c: AutoencoderConfig, parts: AutoencoderParts = .all)
        -> [(name: String, shape: [Int])]
    {
        ((try? AutoencoderKL.expectedWeights(for: c, parts: parts)) ?? []).map { ($0.name, $0.shape) }
    }

    public static func referenceNames(for config: AutoencoderConfig, parts: AutoencoderParts = .all) -> [String] {
        referenceShapes(for: config, parts: parts).map(\.name)
    }

    /// Diffusers names as stored. `deprecatedAttention`: the attention projections carry the names of diffusers'
    /// old `AttentionBlock` (`query`, `key`, `value`, `proj_attn`), which `from_pretrained` still renames on load.
    public static func diffusersRecipe(deprecatedAttention: Bool) -> @Sendable (String) -> WeightRecipe {
        guard deprecatedAttention else { return { .rename($0) } }
        let old = ["to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"]
        return { name in
            for (new, deprecated) in old where name.contains(".attentions.0.\(new).") {
                return .rename(name.replacingOccurrences(of: ".attentions.0.\(new).", with: ".attentions.0.\(deprecated)."))
            }
            return .rename(name)
        }
    }

    /// LDM names with an optional prefix (`first_stage_model.` in Stable Diffusion files, `vae.`), for a VAE of
    /// `levels` resolution levels.
    public static func ldmRecipe(prefix: String, levels: Int) -> @Sendable (String) -> WeightRecipe {
        { .rename(prefix + ldmName($0, levels: levels)) }
    }

    /// The LDM name of a diffusers weight name.
    public static func ldmName(_ name: String, levels: Int) -> String {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3, parts[0] == "encoder" || parts[0] == "decoder" else { return name }
        let coder = parts[0]
        func tail(_ n: Int) -> String { parts.dropFirst(n).joined(separator: ".") }
        let mapped: String
        switch parts[1] {
        case "conv_norm_out":
            mapped = "norm_out." + tail(2)
        case "down_blocks" where parts.count >= 5, "up_blocks" where parts.count >= 5:
            let down = parts[1] == "down_blocks"
            let level = down ? parts[2] : Int(parts[2]).map { String(levels - 1 - $0) } ?? parts[2]
            switch parts[3] {
            case "resnets": mapped = "\(down ? "down" : "up").\(level).block.\(tail(4))"
            case "downsamplers" where parts.count >= 6: mapped = "down.\(level).downsample.\(tail(5))"
            case "upsamplers" where parts.count >= 6: mapped = "up.\(level).upsample.\(tail(5))"
            default: mapped = tail(1)
            }
        case "mid_block" where parts.count >= 5:
            if parts[2] == "resnets", let index = Int(parts[3]) {
                mapped = "mid.block_\(index + 1).\(tail(4))"
            } else if parts[2] == "attentions" {
                let module = parts[4..<(parts.count - 1)].joined(separator: ".")
                let ldm = ["group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"][module]
                    ?? module
                mapped = "mid.attn_1.\(ldm).\(parts[parts.count - 1])"
            } else {
                mapped = tail(1)
            }
        default:
            mapped = tail(1)
        }
        return coder + "." + mapped.replacingOccurrences(of: "conv_shortcut", with: "nin_shortcut")
    }
}
