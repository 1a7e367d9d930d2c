import FluxModel

/// The weight lists that were kept by hand before the module tree recorded them (FluxKeyMap.referenceShapes,
/// VAEKeyMap.referenceShapes, CLIPTextModel.weightNames and T5Encoder.weightNames at f811a5d), frozen here as the
/// oracle that the recorded lists must equal, so that replacing them changed no name and no shape.
enum HandKeptWeightLists {
    static func transformer(_ config: FluxConfig) -> [(name: String, shape: [Int])] {
        let dim = config.hiddenSize, mlp = config.mlpHiddenSize, head = config.attentionHeadDim
        var weights: [(name: String, shape: [Int])] = []
        func linear(_ name: String, _ inFeatures: Int, _ outFeatures: Int) {
            weights += [("\(name).weight", [outFeatures, inFeatures]), ("\(name).bias", [outFeatures])]
        }
        func qkNorm(_ name: String) {
            weights += [("\(name).query_norm.scale", [head]), ("\(name).key_norm.scale", [head])]
        }
        linear("img_in", config.inChannels, dim)
        linear("txt_in", config.jointAttentionDim, dim)
        let embedders = [("time_in", 256), ("vector_in", config.pooledProjectionDim)]
            + (config.guidanceEmbeds ? [("guidance_in", 256)] : [])
        for (embedder, inDim) in embedders {
            linear("\(embedder).in_layer", inDim, dim)
            linear("\(embedder).out_layer", dim, dim)
        }
        for i in 0..<config.numLayers {
            for stream in ["img", "txt"] {
                let p = "double_blocks.\(i).\(stream)"
                linear("\(p)_mod.lin", dim, 6 * dim)
                linear("\(p)_attn.qkv", dim, 3 * dim)
                qkNorm("\(p)_attn.norm")
                linear("\(p)_attn.proj", dim, dim)
                linear("\(p)_mlp.0", dim, mlp)
                linear("\(p)_mlp.2", mlp, dim)
            }
        }
        for i in 0..<config.numSingleLayers {
            let p = "single_blocks.\(i)"
            linear("\(p).linear1", dim, 3 * dim + mlp)
            linear("\(p).linear2", dim + mlp, dim)
            qkNorm("\(p).norm")
            linear("\(p).modulation.lin", dim, 3 * dim)
        }
        linear("final_layer.linear", dim, config.outputChannels)
        linear("final_layer.adaLN_modulation.1", dim, 2 * dim)
        return weights
    }

    static func vae(_ c: AutoencoderConfig, parts: AutoencoderParts = .all)
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

    static func clip(_ config: CLIPConfig) -> [String] {
        let layer = ["layer_norm1.weight", "layer_norm1.bias", "layer_norm2.weight", "layer_norm2.bias"]
            + ["q_proj", "k_proj", "v_proj", "out_proj"].flatMap { ["self_attn.\($0).weight", "self_attn.\($0).bias"] }
            + ["fc1", "fc2"].flatMap { ["mlp.\($0).weight", "mlp.\($0).bias"] }
        return ["embeddings.token_embedding.weight", "embeddings.position_embedding.weight"]
            + (0..<config.numHiddenLayers).flatMap { n in layer.map { "encoder.layers.\(n).\($0)" } }
            + ["final_layer_norm.weight", "final_layer_norm.bias"]
    }

    static func t5(_ config: T5Config) -> [String] {
        let feedForward = config.isGatedAct ? ["wi_0", "wi_1", "wo"] : ["wi", "wo"]
        func block(_ n: Int) -> [String] {
            ["q", "k", "v", "o"].map { "layer.0.SelfAttention.\($0).weight" }
                + (n == 0 ? ["layer.0.SelfAttention.relative_attention_bias.weight"] : [])
                + ["layer.0.layer_norm.weight"]
                + feedForward.map { "layer.1.DenseReluDense.\($0).weight" } + ["layer.1.layer_norm.weight"]
        }
        return ["shared.weight"]
            + (0..<config.numLayers).flatMap { n in block(n).map { "encoder.block.\(n).\($0)" } }
            + ["encoder.final_layer_norm.weight"]
    }
}
