import FluxCore

/// Every AdaLN modulation product `lin(silu(vec))` of the transformer for R rows of `vec`: the B images of one
/// forward, or every step of a schedule at once (R = steps · B).
struct ModulationProducts: Sendable {
    /// Per double block: the image and text streams' products, (R, 6·D) each.
    let double: [(img: Tensor, txt: Tensor)]
    /// Per single block: (R, 3·D).
    let single: [Tensor]
    /// The last layer's `adaLN_modulation`: (R, 2·D), shift then scale.
    let final: Tensor

    /// The modulations of rows `start ..< start + count` (one forward's B images), split into the blocks' triples.
    /// Rows of one step are contiguous, so for one image the slices and chunks are views, not copies.
    func rows(_ start: Int, _ count: Int, on b: any Backend) throws -> StepModulations {
        func take(_ t: Tensor) throws -> Tensor {
            start == 0 && count == t.shape[0] ? t : try b.slice(t, axis: 0, start: start, count: count)
        }
        let last = try b.chunk(try take(final), 2, axis: 1)
        return StepModulations(
            double: try double.map { (img: try Modulation.split(try take($0.img), triples: 2, on: b),
                                      txt: try Modulation.split(try take($0.txt), triples: 2, on: b)) },
            single: try single.map { try Modulation.split(try take($0), triples: 1, on: b)[0] },
            final: (shift: last[0], scale: last[1]))
    }
}

/// The modulations one forward uses.
struct StepModulations: Sendable {
    let double: [(img: [ModulationOut], txt: [ModulationOut])]
    let single: [ModulationOut]
    let final: (shift: Tensor, scale: Tensor)
}

/// The conditioning of a whole schedule, made before denoising (`FluxTransformer.conditioning`): every block's
/// modulation for every step in one product per modulation layer, so that their weights — about a quarter of
/// FLUX.1's parameters — are read once per image instead of once per step. The numbers are those of the per-step
/// forward (the same products, row by row).
public struct ScheduleConditioning: Sendable {
    /// Model timesteps (0…1) of each step, B per step: what `callAsFunction` is checked against.
    public let timesteps: [[Float]]
    public let guidance: [[Float]]?
    let products: ModulationProducts

    public var steps: Int { timesteps.count }
}

extension FluxTransformer {
    /// Largest steps × images whose modulations `FluxPipeline` makes ahead (≈ 9 MB of bf16 per row at FLUX.1 size).
    public static let scheduleConditioningRowLimit = 128

    /// Conditioning for a whole schedule: `timesteps[i]` and `guidance[i]` are step i's B values (as passed to
    /// `callAsFunction`), `y` the pooled text embedding (B, pooled_projection_dim).
    public func conditioning(y: Tensor, timesteps: [[Float]], guidance: [[Float]]?) throws -> ScheduleConditioning {
        let b = backend
        let batch = y.rank == 2 ? y.shape[0] : -1
        guard y.shape == [batch, config.pooledProjectionDim], batch > 0 else {
            throw ModelError.inputShape(name: "pooled_projections", shape: y.shape,
                                        expected: "(B, \(config.pooledProjectionDim))")
        }
        guard !timesteps.isEmpty, timesteps.allSatisfy({ $0.count == batch }) else {
            throw ModelError.inputShape(name: "timestep", shape: timesteps.map(\.count),
                                        expected: "\(batch) values per step")
        }
        if guidanceIn != nil {
            guard let guidance, guidance.count == timesteps.count, guidance.allSatisfy({ $0.count == batch }) else {
                throw ModelError.missingInput(name: "guidance", expected: "\(batch) values per step")
            }
        }
        let siluVec = try conditioningVector(y: try b.concat(Array(repeating: y, count: timesteps.count), axis: 0),
                                             timesteps: timesteps.flatMap { $0 }, guidance: guidance?.flatMap { $0 })
        return ScheduleConditioning(timesteps: timesteps, guidance: guidanceIn == nil ? nil : guidance,
                                    products: try modulationProducts(siluVec))
    }

    /// `silu(vec)`, vec = time_in(t) + guidance_in(g) + vector_in(y): one row per entry of `timesteps`.
    func conditioningVector(y: Tensor, timesteps: [Float], guidance: [Float]?) throws -> Tensor {
        let b = backend
        var vec = try timeIn(try b.upload(timestepEmbedding(timesteps, dim: Self.timestepEmbeddingDim)), on: b)
        if let guidanceIn {
            guard let guidance, guidance.count == timesteps.count else {
                throw ModelError.missingInput(name: "guidance",
                                              expected: "\(timesteps.count) values (guidance-distilled model)")
            }
            vec = try b.add(vec, try guidanceIn(try b.upload(timestepEmbedding(guidance)), on: b))
        }
        vec = try b.add(vec, try vectorIn(y, on: b))
        return try b.activation(vec, .silu)
    }

    /// Every modulation layer applied to `siluVec` (R, D).
    func modulationProducts(_ siluVec: Tensor) throws -> ModulationProducts {
        let b = backend
        return ModulationProducts(
            double: try doubleBlocks.map { (img: try $0.imgMod.lin(siluVec, on: b), txt: try $0.txtMod.lin(siluVec, on: b)) },
            single: try singleBlocks.map { try $0.modulation.lin(siluVec, on: b) },
            final: try finalLayer.adaLNModulation(siluVec, on: b))
    }
}
