import FluxCore

/// Where a linear layer finds the LoRA it runs beside its weight, when LoRAs change between requests without
/// touching the weights: `y = W·x + b + up · (down · x)`, then the layer's activation.
///
/// One slot per linear layer (or per row block of one: a single block's `linear1` runs as its q/k/v rows and its MLP
/// rows); `LowRankSlots.apply` fills all of them from a set of `LowRankDeltas` between generations, on the thread
/// that runs them.
public final class LowRankSlot: @unchecked Sendable {
    /// Full reference name of the weight (`single_blocks.0.linear1.weight`) and the rows of it this layer computes.
    public let weight: String
    public let rows: Range<Int>
    /// down (R, in) and up (rows, R) on the backend, scales folded into up; nil when no LoRA adapts the layer.
    public internal(set) var pair: (down: Tensor, up: Tensor)?

    init(weight: String, rows: Range<Int>) { (self.weight, self.rows) = (weight, rows) }
}

/// Every slot of one model (transformer, CLIP or T5), made as its layers are built (`ModuleWeights.lowRankSlots`).
public final class LowRankSlots: @unchecked Sendable {
    private(set) var slots: [LowRankSlot] = []

    public init() {}

    /// A slot for `rows` of `weight` (made when the layer is built).
    func slot(_ weight: String, rows: Range<Int>) -> LowRankSlot {
        let slot = LowRankSlot(weight: weight, rows: rows)
        slots.append(slot)
        return slot
    }

    /// Fills each slot from `deltas` (its rows of the delta's up matrix) and empties the others. Uploads one down
    /// matrix per weight and each slot's rows of up: R·(in + out) numbers per layer, no base weight is touched.
    public func apply(_ deltas: LowRankDeltas, on backend: any Backend) throws {
        var downs: [String: Tensor] = [:]
        for slot in slots {
            guard let delta = deltas[slot.weight] else {
                slot.pair = nil
                continue
            }
            let down = try downs[slot.weight] ?? backend.upload(delta.down)
            downs[slot.weight] = down
            let upRows = delta.up.floats()[slot.rows.lowerBound * delta.rank..<slot.rows.upperBound * delta.rank]
            slot.pair = (down, try backend.upload(HostTensor(Array(upRows), shape: [slot.rows.count, delta.rank])))
        }
    }

    /// How many layers run a LoRA now.
    public var activeCount: Int { slots.filter { $0.pair != nil }.count }
}
