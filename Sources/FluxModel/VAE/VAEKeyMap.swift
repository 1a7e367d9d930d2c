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
    /// projections as linears (C, C)).
    public static func referenceShapes(for c: AutoencoderConfig, parts: AutoencoderParts = .all)
        -> [(name: String, shape: [Int])]
    {
        var weights: [(name: String, shape: [Int])] = []
        func conv(_ name: String, _ inChannels: Int, _ outChannels: Int, _ kernel: Int) {
            weights += [("\(name).weight", [outChannels, inChannels, kernel, kernel]), ("\(name).bias", [outChannels])]
        }
        func norm(_ name: String, _ channels: Int) {
            weights += [("\(name).weight", [channels]), ("\(name).bias", [channels])]
        }
        func resnet(_ name: String, _ inChannels: Int, _ outChannels: Int) {
            norm("\(name).norm1", inChannels)
            conv("\(name).conv1", inChannels, outChannels, 3)
            norm("\(name).norm2", outChannels)
            conv("\(name).conv2", outChannels, outChannels, 3)
            if inChannels != outChannels { conv("\(name).conv_shortcut", inChannels, outChannels, 1) }
        }
        func mid(_ name: String, _ channels: Int) {
            resnet("\(name).resnets.0", channels, channels)
            if c.midBlockAddAttention {
                norm("\(name).attentions.0.group_norm", channels)
                for projection in ["to_q", "to_k", "to_v", "to_out.0"] {
                    weights += [("\(name).attentions.0.\(projection).weight", [channels, channels]),
                                ("\(name).attentions.0.\(projection).bias", [channels])]
                }
            }
            resnet("\(name).resnets.1", channels, channels)
        }
        let channels = c.blockOutChannels, widest = channels[channels.count - 1], last = channels.count - 1
        if parts.contains(.encoder) {
            conv("encoder.conv_in", c.inChannels, channels[0], 3)
            for i in channels.indices {
                for j in 0..<c.layersPerBlock {
                    resnet("encoder.down_blocks.\(i).resnets.\(j)", j == 0 ? channels[max(i - 1, 0)] : channels[i],
                           channels[i])
                }
                if i < last { conv("encoder.down_blocks.\(i).downsamplers.0.conv", channels[i], channels[i], 3) }
            }
            mid("encoder.mid_block", widest)
            norm("encoder.conv_norm_out", widest)
            conv("encoder.conv_out", widest, 2 * c.latentChannels, 3)
            if c.useQuantConv { conv("quant_conv", 2 * c.latentChannels, 2 * c.latentChannels, 1) }
        }
        if parts.contains(.decoder) {
            if c.usePostQuantConv { conv("post_quant_conv", c.latentChannels, c.latentChannels, 1) }
            conv("decoder.conv_in", c.latentChannels, widest, 3)
            mid("decoder.mid_block", widest)
            let reversed = Array(channels.reversed())
            for i in reversed.indices {
                for j in 0...c.layersPerBlock {
                    resnet("decoder.up_blocks.\(i).resnets.\(j)", j == 0 ? reversed[max(i - 1, 0)] : reversed[i],
                           reversed[i])
                }
                if i < last { conv("decoder.up_blocks.\(i).upsamplers.0.conv", reversed[i], reversed[i], 3) }
            }
            norm("decoder.conv_norm_out", channels[0])
            conv("decoder.conv_out", channels[0], c.outChannels, 3)
        }
        return weights
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
