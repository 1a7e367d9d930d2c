import FluxCore
import Foundation

/// Where a linear layer finds the LoRA of the current request, when LoRAs change between requests without
/// reloading the model (`LowRankSlots.Mode`).
///
/// One slot per linear layer (or per row block of one: a single block's `linear1` runs as its q/k/v rows and its MLP
/// rows); `LowRankSlots.apply` fills all of them from a set of `LowRankDeltas` between generations, on the thread
/// that runs them.
public final class LowRankSlot: @unchecked Sendable {
    /// Full reference name of the weight (`single_blocks.0.linear1.weight`) and the rows of it this layer computes.
    public let weight: String
    public let rows: Range<Int>
    /// `.swap`: the layer's own dense weight (rows, in), never changed; merged copies are made from it.
    let base: Tensor?
    /// How the layer keeps its weight (a merged copy is quantized the same way).
    let quantization: LinearQuantization
    /// `.beside`: down (R, in) and up (rows, R), scales folded into up; nil when no LoRA adapts the layer.
    public internal(set) var pair: (down: Tensor, up: Tensor)?
    /// `.swap`: `base + up·down`, quantized as the layer is; the product uses it instead of the layer's weight.
    public internal(set) var merged: Linear.Weight?

    init(weight: String, rows: Range<Int>, base: Tensor?, quantization: LinearQuantization) {
        (self.weight, self.rows, self.base, self.quantization) = (weight, rows, base, quantization)
    }
}

/// Every slot of one model (transformer, CLIP or T5), made as its layers are built (`ModuleWeights.lowRankSlots`).
public final class LowRankSlots: @unchecked Sendable {
    /// How a LoRA set reaches the layers. Both leave the base weights untouched, so switching back is exact.
    public enum Mode: Sendable {
        /// `y = W·x + b + up·(down·x)`: two thin products and an add per adapted layer and step; a switch uploads
        /// the adapters only; memory: the adapters.
        case beside
        /// A merged copy `W + up·down` per adapted layer, made at each switch (one product per layer) and used
        /// instead of W: steps cost what they cost without a LoRA; memory: the adapted layers' weights once more
        /// while a LoRA is set, and, for fp8 layers, their dense weights kept from loading.
        case swap
    }

    public let mode: Mode
    private(set) var slots: [LowRankSlot] = []

    public init(_ mode: Mode = .beside) { self.mode = mode }

    /// A slot for `rows` of `weight`, whose dense rows are `base` (made when the layer is built).
    func slot(_ weight: String, rows: Range<Int>, base: Tensor, quantization: LinearQuantization) -> LowRankSlot {
        let slot = LowRankSlot(weight: weight, rows: rows, base: mode == .swap ? base : nil,
                               quantization: quantization)
        slots.append(slot)
        return slot
    }

    /// Fills each slot from `deltas` (its rows of the delta's up matrix) and empties the others. If it fails part
    /// way (out of memory), every slot is emptied before the error is rethrown: no layer keeps a half-applied set.
    /// `mode`: `.beside` works in slots of either mode (benchmarks compare the two on one model); `.swap` needs
    /// slots made for it.
    public func apply(_ deltas: LowRankDeltas, on backend: any Backend, as mode: Mode? = nil) throws {
        let mode = mode ?? self.mode
        // Host work first, for all slots at once on every core (each slot's rows of up, and for a swap the
        // transposed down a product takes); then the uploads and products, in order.
        typealias Prepared = (delta: LowRankDelta, transposedDown: HostTensor?)
        let slots = self.slots
        let prepared = [Prepared?](unsafeUninitializedCapacity: slots.count) { buffer, count in
            let out = UncheckedBuffer(buffer.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: slots.count) { i in
                let slot = slots[i]
                (out.pointer + i).initialize(to: deltas[slot.weight].map {
                    ($0.rows(slot.rows), mode == .swap ? $0.transposedDown() : nil)
                })
            }
            count = slots.count
        }
        do {
            var downs: [String: Tensor] = [:]
            for (slot, prepared) in zip(slots, prepared) {
                guard let (delta, transposedDown) = prepared else {
                    (slot.pair, slot.merged) = (nil, nil)
                    continue
                }
                switch mode {
                case .beside:
                    slot.merged = nil
                    let down = try downs[slot.weight] ?? backend.upload(delta.down)
                    downs[slot.weight] = down
                    slot.pair = (down, try backend.upload(delta.up))
                case .swap:
                    guard let base = slot.base else { continue }
                    (slot.pair, slot.merged) = (nil, nil)  // the old copy goes before the new one is made
                    slot.merged = try Linear(weight: try delta.merged(into: base, on: backend, transposedDown: transposedDown),
                                             bias: nil)
                        .quantized(slot.quantization, on: backend).weight
                }
            }
        } catch {
            for slot in slots { (slot.pair, slot.merged) = (nil, nil) }
            throw error
        }
    }

    /// How many layers run a LoRA now.
    public var activeCount: Int { slots.filter { $0.pair != nil || $0.merged != nil }.count }
}

extension LowRankDelta {
    /// The update of `rows` of the weight only (a layer that computes a row block of it): up's rows, as a view.
    func rows(_ rows: Range<Int>) -> LowRankDelta {
        guard rows.count != up.shape[0] else { return self }
        let bytes = rank * up.dtype.byteSize
        let view = UnsafeRawBufferPointer(rebasing: up.bytes[rows.lowerBound * bytes..<rows.upperBound * bytes])
        return LowRankDelta(down: down, up: HostTensor(copying: view, shape: [rows.count, rank], dtype: up.dtype))
    }
}

/// A buffer that worker threads fill at disjoint indices.
private struct UncheckedBuffer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}
