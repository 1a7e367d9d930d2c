import FluxCore

/// The linear layers of one model that a LoRA may adapt, under every spelling a file may use (`LoRANaming`), built
/// from the module trees themselves (`WeightRecorder.linearWeights`) and the transformer's key map, not from lists.
public struct LoRATargets: Sendable {
    /// The weight a module's pair adds to, and which of its rows the pair's up matrix covers.
    struct Target: Sendable {
        /// Full reference name: `double_blocks.0.img_attn.qkv.weight`.
        let weight: String
        let rows: Range<Int>
        let outFeatures: Int
        let inFeatures: Int
        /// diffusers' `norm_out.linear` holds BFL's `final_layer.adaLN_modulation.1` with its halves swapped.
        let swapHalves: Bool
    }

    private var table: [LoRAAddress: Target] = [:]
    /// What each component is, for messages.
    private(set) var models: [LoRAComponent: String] = [:]

    /// The targets of a FLUX pipeline: its transformer, and its text encoders when given.
    public init(transformer: FluxConfig, clip: CLIPConfig? = nil, t5: T5Config? = nil) throws {
        let linears = try WeightRecorder.linearWeights { _ = try FluxTransformer(config: transformer, weights: $0) }
        let dim = transformer.hiddenSize
        for w in linears {
            let whole = add(.transformer, w)
            switch FluxKeyMap.diffusersRecipe(w.name) {
            case let .rename(stored): addDiffusers(stored, whole)
            case let .swapHalves(stored):
                addDiffusers(stored, Target(weight: whole.weight, rows: whole.rows, outFeatures: whole.outFeatures,
                                            inFeatures: whole.inFeatures, swapHalves: true))
            case let .concat(parts):
                var start = 0
                for (stored, rows) in zip(parts, FluxKeyMap.partRows(count: parts.count, total: whole.outFeatures,
                                                                       hidden: dim)) {
                    addDiffusers(stored, whole.rows(start..<start + rows))
                    start += rows
                }
            }
        }
        // XLabs' processors: q/k/v and the output projection of each stream; a single block's q/k/v are
        // linear1's first 3·D rows (its MLP input is not adapted).
        for i in 0..<transformer.numLayers {
            for (processor, module) in [("qkv_lora1", "img_attn.qkv"), ("proj_lora1", "img_attn.proj"),
                                        ("qkv_lora2", "txt_attn.qkv"), ("proj_lora2", "txt_attn.proj")] {
                alias("double_blocks.\(i).processor.\(processor)", to: "double_blocks.\(i).\(module)", rows: nil)
            }
        }
        for i in 0..<transformer.numSingleLayers {
            alias("single_blocks.\(i).processor.qkv_lora", to: "single_blocks.\(i).linear1", rows: 0..<3 * dim)
            alias("single_blocks.\(i).processor.proj_lora", to: "single_blocks.\(i).linear2", rows: nil)
        }
        models[.transformer] = "the FLUX transformer (\(transformer.numLayers) double + "
            + "\(transformer.numSingleLayers) single blocks, width \(dim))"
        if let clip {
            for w in try WeightRecorder.linearWeights({ _ = try CLIPTextModel(config: clip, weights: $0) }) {
                add(.clip, w)
            }
            models[.clip] = "the CLIP text encoder (\(clip.numHiddenLayers) layers, width \(clip.hiddenSize))"
        }
        if let t5 {
            for w in try WeightRecorder.linearWeights({ _ = try T5Encoder(config: t5, weights: $0) }) {
                add(.t5, w)
            }
            models[.t5] = "the T5 encoder (\(t5.numLayers) layers, width \(t5.dModel))"
        }
    }

    func target(_ address: LoRAAddress) -> Target? { table[address] }

    /// A reference-named linear weight under its dotted and kohya-underscored names.
    @discardableResult
    private mutating func add(_ component: LoRAComponent, _ w: ExpectedWeight) -> Target {
        let module = String(w.name.dropLast(".weight".count))
        let target = Target(weight: w.name, rows: 0..<w.shape[0], outFeatures: w.shape[0], inFeatures: w.shape[1],
                            swapHalves: false)
        table[LoRAAddress(component: component, naming: .reference, name: module)] = target
        table[LoRAAddress(component: component, naming: .referenceUnderscored, name: underscored(module))] = target
        return target
    }

    private mutating func addDiffusers(_ storedWeight: String, _ target: Target) {
        let module = String(storedWeight.dropLast(".weight".count))
        table[LoRAAddress(component: .transformer, naming: .diffusers, name: module)] = target
        table[LoRAAddress(component: .transformer, naming: .diffusersUnderscored, name: underscored(module))] = target
    }

    private mutating func alias(_ xlabs: String, to module: String, rows: Range<Int>?) {
        guard let whole = table[LoRAAddress(component: .transformer, naming: .reference, name: module)] else { return }
        table[LoRAAddress(component: .transformer, naming: .xlabs, name: xlabs)] = rows.map(whole.rows) ?? whole
    }

    private func underscored(_ name: String) -> String { name.replacingOccurrences(of: ".", with: "_") }
}

extension LoRATargets.Target {
    /// The same weight, with the pair covering `rows` only.
    func rows(_ rows: Range<Int>) -> Self {
        Self(weight: weight, rows: rows, outFeatures: outFeatures, inFeatures: inFeatures, swapHalves: swapHalves)
    }
}
