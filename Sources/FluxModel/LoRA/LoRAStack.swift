import FluxCore

/// The sum of several low-rank updates of one weight (out, in) as one pair: `W' = W + up · down`.
///
/// Each adapter module contributes its rank's rows of `down` (its lora_A as stored) and the same columns of `up`
/// (its lora_B in the rows it covers, times user scale × alpha / rank; zero elsewhere). A fused layer adapted by
/// split modules (diffusers' to_q, to_k, to_v on BFL's qkv) so gets a block-diagonal `up`; a fused LoRA on a split
/// layer never arises (the model keeps BFL's fused layers).
public struct LowRankDelta: Sendable {
    /// (R, in), R the sum of the ranks.
    public let down: HostTensor
    /// (out, R), scales folded in.
    public let up: HostTensor

    public var rank: Int { down.shape[0] }

    /// down (R, in), up (out, R) f32, scales already in `up`.
    public init(down: HostTensor, up: HostTensor) { (self.down, self.up) = (down, up) }

    /// A seeded random rank-`rank` update for a weight (out, in): N(0, 1/in) down, N(0, 0.02²) up (benchmarks).
    public static func random(out: Int, in inFeatures: Int, rank: Int, seed: UInt64) -> LowRankDelta {
        var noise = GaussianNoise(seed: seed)
        let scale = 1 / Float(inFeatures).squareRoot()
        return LowRankDelta(down: HostTensor(noise.sample(rank * inFeatures).map { $0 * scale },
                                             shape: [rank, inFeatures]),
                            up: HostTensor(noise.sample(out * rank).map { $0 * 0.02 }, shape: [out, rank]))
    }

    /// `w + up · down` on `backend`, as one product and one add (f32 on the CPU; on a GPU the product accumulates
    /// in f32 and is rounded once to the weight's dtype before the add).
    /// `transposedDown`: `transposedDown()` made ahead (`LowRankSlots.apply` makes them on every core).
    public func merged(into w: Tensor, on backend: any Backend, transposedDown: HostTensor? = nil) throws -> Tensor {
        let product = try backend.linear(try backend.upload(up),
                                         weight: try backend.upload(transposedDown ?? self.transposedDown()),
                                         bias: nil)
        return try backend.add(w, product)
    }

    /// down transposed, (in, R): the weight operand of `up · down` as a `linear`.
    public func transposedDown() -> HostTensor {
        let (r, inFeatures) = (down.shape[0], down.shape[1])
        let values = down.floats()
        var transposed = [Float](repeating: 0, count: values.count)
        for i in 0..<r { for j in 0..<inFeatures { transposed[j * r + i] = values[i * inFeatures + j] } }
        return HostTensor(transposed, shape: [inFeatures, r])
    }
}

/// Low-rank updates keyed by the full reference name of the weight they change (`double_blocks.0.img_attn.qkv.weight`).
public typealias LowRankDeltas = [String: LowRankDelta]

/// LoRA files with the scales a user chose, in order (`--lora FILE[:SCALE]`, `loras: [{name, scale}]`).
public struct LoRAStack: Sendable {
    public struct Entry: Sendable {
        public let file: LoRAFile
        /// Multiplies the file's own alpha / rank; negative values subtract the adapter.
        public let scale: Double

        public init(file: LoRAFile, scale: Double) { (self.file, self.scale) = (file, scale) }
    }

    public var entries: [Entry]

    public init(_ entries: [Entry] = []) { self.entries = entries }

    public var isEmpty: Bool { entries.isEmpty }

    /// Whether every module of every file matches a weight of `targets` with shapes that fit: the errors `deltas`
    /// would throw, in the same order, without building any matrix (checks before loading, the service's catalog).
    public func check(against targets: LoRATargets) throws {
        for entry in entries {
            for module in entry.file.modules { _ = try Self.match(module, in: targets, file: entry.file.path) }
        }
    }

    /// Every module of every file matched to the weight it changes, summed per weight and component. Throws naming
    /// the first key whose module `targets` lacks or whose shapes do not fit, so nothing is ever left out silently.
    public func deltas(for targets: LoRATargets) throws -> [LoRAComponent: LowRankDeltas] {
        struct Part { let module: LoRAModule; let target: LoRATargets.Target; let scale: Double }
        var parts: [LoRAComponent: [String: [Part]]] = [:]
        var order: [(LoRAComponent, String)] = []
        for entry in entries {
            for module in entry.file.modules {
                let target = try Self.match(module, in: targets, file: entry.file.path)
                if parts[module.component]?[target.weight] == nil { order.append((module.component, target.weight)) }
                parts[module.component, default: [:]][target.weight, default: []]
                    .append(Part(module: module, target: target, scale: entry.scale * module.scale))
            }
        }
        var result: [LoRAComponent: LowRankDeltas] = [:]
        for (component, weight) in order {
            let list = parts[component]![weight]!
            let (outFeatures, inFeatures) = (list[0].target.outFeatures, list[0].target.inFeatures)
            // Zero columns pad the rank to a multiple of 16 (aligned rows for GPU products; the sum is unchanged).
            let rank = (list.reduce(0) { $0 + $1.module.rank } + 15) / 16 * 16
            var down = [Float](repeating: 0, count: rank * inFeatures)
            var up = [Float](repeating: 0, count: outFeatures * rank)
            var column = 0
            for part in list {
                let r = part.module.rank
                let a = part.module.down.floats(), b = part.module.up.floats()
                down.replaceSubrange(column * inFeatures..<(column + r) * inFeatures, with: a)
                let rows = part.target.rows, half = outFeatures / 2
                for (i, row) in rows.enumerated() {
                    // diffusers' norm_out.linear: its first half (scale) is BFL's second.
                    let destination = part.target.swapHalves ? (row + half) % outFeatures : row
                    for j in 0..<r {
                        up[destination * rank + column + j] = Float(part.scale * Double(b[i * r + j]))
                    }
                }
                column += r
            }
            result[component, default: [:]][weight] = LowRankDelta(
                down: HostTensor(down, shape: [rank, inFeatures]), up: HostTensor(up, shape: [outFeatures, rank]))
        }
        return result
    }

    /// The target of `module`, its shapes checked against it.
    static func match(_ module: LoRAModule, in targets: LoRATargets, file: String) throws -> LoRATargets.Target {
        guard let target = targets.target(module.address) else {
            throw LoRAError.noSuchModule(file: file, key: module.downKey, module: module.address.name,
                                         model: targets.models[module.component]
                                            ?? "the model (no \(module.component.rawValue) loaded)")
        }
        guard module.down.shape[1] == target.inFeatures else {
            throw LoRAError.shape(file: file, key: module.downKey, shape: module.down.shape,
                                  expected: "(rank, \(target.inFeatures)) for \(target.weight)")
        }
        guard module.up.shape[0] == target.rows.count else {
            throw LoRAError.shape(file: file, key: module.upKey, shape: module.up.shape,
                                  expected: "(\(target.rows.count), \(module.rank)) for "
                                    + (target.rows.count == target.outFeatures ? target.weight
                                        : "rows \(target.rows.lowerBound)..<\(target.rows.upperBound) of \(target.weight)"))
        }
        return target
    }
}
