import FluxCore
import Foundation

/// How one reference-named weight is assembled from the tensors a checkpoint stores.
public enum WeightRecipe: Sendable, Equatable {
    /// Stored under another name.
    case rename(String)
    /// Stored as parts to join along axis 0 (e.g. diffusers' separate to_q/to_k/to_v for BFL's fused qkv).
    case concat([String])
    /// Stored with its two halves along axis 0 in the other order (diffusers' `norm_out` keeps scale before shift;
    /// BFL's `final_layer.adaLN_modulation` keeps shift before scale).
    case swapHalves(String)

    /// The stored tensors this recipe reads.
    public var sources: [String] {
        switch self {
        case let .rename(name), let .swapHalves(name): [name]
        case let .concat(names): names
        }
    }
}

/// A checkpoint's tensors seen under the reference (BFL) names the model code uses.
///
/// `recipe` maps a reference name to the stored tensors; names are written once, in the layout's key map.
public final class WeightSource: @unchecked Sendable {
    public let checkpoint: SafetensorsCheckpoint
    public let description: String
    private let recipe: @Sendable (String) -> WeightRecipe
    private let assembly = AssemblyBuffers()

    public init(checkpoint: SafetensorsCheckpoint, description: String,
                recipe: @escaping @Sendable (String) -> WeightRecipe) {
        self.checkpoint = checkpoint
        self.description = description
        self.recipe = recipe
    }

    public func recipe(for name: String) -> WeightRecipe { recipe(name) }

    /// Whether every stored part of `name` is present.
    public func contains(_ name: String) -> Bool {
        recipe(name).sources.allSatisfy { checkpoint.contains($0) }
    }

    /// Shape of the assembled tensor, or nil when a part is missing or the parts do not join.
    public func shape(_ name: String) -> [Int]? {
        let parts = recipe(name).sources.compactMap { checkpoint.info($0) }
        guard parts.count == recipe(name).sources.count, let first = parts.first else { return nil }
        guard parts.allSatisfy({ $0.shape.dropFirst() == first.shape.dropFirst() && $0.shape.count >= 1 }) else {
            return nil
        }
        return [parts.reduce(0) { $0 + $1.shape[0] }] + first.shape.dropFirst()
    }

    /// The assembled tensor, in the stored dtype.
    public func load(_ name: String) throws -> HostTensor {
        let r = recipe(name)
        for part in r.sources where !checkpoint.contains(part) {
            throw ModelError.missingWeight(name: part, source: description)
        }
        switch r {
        case let .rename(stored):
            return try checkpoint.tensor(stored)
        case let .concat(parts):
            return try concatAxis0(try parts.map { try checkpoint.tensor($0) }, name: name)
        case let .swapHalves(stored):
            let t = try checkpoint.tensor(stored)
            guard let rows = t.shape.first, rows % 2 == 0 else {
                throw ModelError.weightShape(name: stored, shape: t.shape, expected: [-1], source: description)
            }
            let half = t.bytes.count / 2
            let lower = UnsafeRawBufferPointer(rebasing: t.bytes[half...])
            let upper = UnsafeRawBufferPointer(rebasing: t.bytes[..<half])
            return try concatRaw([lower, upper], shape: t.shape, dtype: t.dtype)
        }
    }

    private func concatAxis0(_ parts: [HostTensor], name: String) throws -> HostTensor {
        guard let first = parts.first else { throw ModelError.missingWeight(name: name, source: description) }
        for p in parts where p.dtype != first.dtype || Array(p.shape.dropFirst()) != Array(first.shape.dropFirst())
            || p.shape.isEmpty
        {
            throw ModelError.weightShape(name: name, shape: p.shape, expected: first.shape, source: description)
        }
        let shape = [parts.reduce(0) { $0 + $1.shape[0] }] + first.shape.dropFirst()
        return try concatRaw(parts.map(\.bytes), shape: shape, dtype: first.dtype)
    }

    /// The pieces one after another in one host block (reused from an earlier assembled weight when one has been
    /// dropped), copied by several threads when large.
    private func concatRaw(_ pieces: [UnsafeRawBufferPointer], shape: [Int], dtype: DType) throws -> HostTensor {
        let total = pieces.reduce(0) { $0 + $1.count }
        let (pointer, owner) = assembly.take(total)
        copyInParallel(pieces, to: pointer)
        return HostTensor(shape: shape, dtype: dtype, bytes: UnsafeRawBufferPointer(start: pointer, count: total),
                          owner: owner)
    }
}

/// Host memory for weights assembled from stored parts. A block comes back when the tensor made in it is dropped
/// (after its upload) and is handed out again, so the checkpoint's many large fused weights (qkv, qkv+mlp) do not
/// each fault in fresh pages: copying into fresh memory ran at ~1.5 GB/s, into warm memory at 6–10 GB/s (one thread,
/// page-cached file). One spare block is kept, the largest given back; it lives as long as the `WeightSource`.
final class AssemblyBuffers: @unchecked Sendable {
    private let lock = NSLock()
    private var spare: HostBuffer?

    /// At least `byteCount` bytes, and the object whose lifetime they share.
    func take(_ byteCount: Int) -> (pointer: UnsafeMutableRawPointer, owner: AnyObject) {
        lock.lock()
        var reused: HostBuffer?
        if let spare, spare.byteCount >= byteCount {
            reused = spare
            self.spare = nil
        }
        lock.unlock()
        let block = reused ?? HostBuffer(byteCount: byteCount)
        return (block.pointer, Lease(block: block, pool: self))
    }

    fileprivate func giveBack(_ block: HostBuffer) {
        lock.lock()
        defer { lock.unlock() }
        if (spare?.byteCount ?? -1) < block.byteCount { spare = block }
    }

    /// Owns a block while a host tensor uses it; gives it back to the pool when the tensor is gone.
    private final class Lease: @unchecked Sendable {
        let block: HostBuffer
        let pool: AssemblyBuffers

        init(block: HostBuffer, pool: AssemblyBuffers) { (self.block, self.pool) = (block, pool) }

        deinit { pool.giveBack(block) }
    }
}

/// Copies `pieces` one after another to `destination`; above a few MiB in slices of at least 1 MiB on several
/// threads (each slice writes its own bytes), which also takes the page faults of an mmapped source in parallel.
func copyInParallel(_ pieces: [UnsafeRawBufferPointer], to destination: UnsafeMutableRawPointer) {
    let joined = JoinedPieces(pieces, elementSize: 1)
    let total = pieces.reduce(0) { $0 + $1.count }
    forEachSlice(of: 0..<total, minimumSlice: 1 << 20,
                 threads: min(16, max(1, ProcessInfo.processInfo.activeProcessorCount))) { bytes in
        joined.forEachPart(in: bytes) { source, first, count in
            (destination + first).copyMemory(from: source, byteCount: count)
        }
    }
}

/// The weights of one module: a `WeightSource` seen under a name prefix, uploading to `backend` with shape checks —
/// or, for benchmarks without a checkpoint, seeded random weights of whatever shape the module asks for — or, to learn
/// what a checkpoint must hold, a `WeightRecorder` noting each name and shape asked for.
public struct ModuleWeights: Sendable {
    public let backend: any Backend
    private let source: WeightSource?
    private let random: RandomWeights?
    private let recorder: WeightRecorder?
    public private(set) var prefix: String
    /// How `linear` keeps the weights it loads (the transformer sets this for its blocks only).
    public var quantization: LinearQuantization = .none
    /// LoRA updates merged into linear weights as they load (`LoRAStack.deltas`), by full reference name.
    public var lowRank: LowRankDeltas = [:]
    /// When set, every linear layer gets a slot here for LoRAs run beside its weight (`LowRankSlots.apply`).
    public var lowRankSlots: LowRankSlots?

    public init(backend: any Backend, source: WeightSource, prefix: String = "", lowRank: LowRankDeltas = [:]) {
        (self.backend, self.source, self.random, self.recorder, self.prefix) = (backend, source, nil, nil, prefix)
        self.lowRank = lowRank
    }

    /// Weights drawn from `random` instead of a checkpoint.
    public init(backend: any Backend, random: RandomWeights, prefix: String = "") {
        (self.backend, self.source, self.random, self.recorder, self.prefix) = (backend, nil, random, nil, prefix)
    }

    /// Weights that hold no numbers: each one asked for is noted in `recorder` (see `WeightRecorder`).
    public init(recording recorder: WeightRecorder, prefix: String = "") {
        (self.backend, self.source, self.random, self.recorder, self.prefix) =
            (RecordingBackend(), nil, nil, recorder, prefix)
    }

    /// Where the weights come from, for messages.
    public var description: String {
        source?.description ?? random?.description ?? (recorder != nil ? "weight recorder" : "weights")
    }

    /// The weights of a child module: `scope("img_attn")` under `double_blocks.3.` reads `double_blocks.3.img_attn.*`.
    public func scope(_ name: String) -> ModuleWeights {
        var child = self
        child.prefix = prefix + name + "."
        return child
    }

    /// The shape the checkpoint stores for `name` (nil when absent, or for random weights), for modules that accept
    /// more than one stored form of the same numbers. Recording, nil: the module's own form is what it expects.
    public func storedShape(_ name: String) -> [Int]? { source?.shape(prefix + name) }

    /// Loads `name`, checking its shape, and uploads it.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let full = prefix + name
        if let random { return try random.tensor(full, shape: shape, on: backend) }
        if let recorder {
            recorder.record(full, shape: shape)
            return Tensor(shape: shape, dtype: .f32, storage: RecordedStorage())
        }
        guard let source, let stored = source.shape(full) else {
            throw ModelError.missingWeight(name: full, source: description)
        }
        guard stored == shape else {
            throw ModelError.weightShape(name: full, shape: stored, expected: shape, source: description)
        }
        return try backend.upload(try source.load(full))
    }

    /// A linear layer, quantized as `quantization` says.
    public func linear(_ name: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws -> Linear {
        let w = try linearWeight(name, in: inFeatures, out: outFeatures)
        return try quantized(Linear(weight: w, bias: bias ? try scope(name).tensor("bias", shape: [outFeatures]) : nil,
                                    lowRank: lowRankSlot(name, rows: 0..<outFeatures, base: w)))
    }

    /// The (out, in) weight of linear layer `name`, with its LoRA update merged when `lowRank` has one: the one
    /// place a LoRA reaches the model, before any quantization (so fp8 weights carry it too).
    public func linearWeight(_ name: String, in inFeatures: Int, out outFeatures: Int) throws -> Tensor {
        let full = prefix + name + ".weight"
        let w = try scope(name).tensor("weight", shape: [outFeatures, inFeatures])
        recorder?.recordLinear(full)
        guard let delta = lowRank[full] else { return w }
        return try delta.merged(into: w, on: backend)
    }

    /// The slot of rows `rows` of linear layer `name`'s weight, whose dense rows are `base`, when this model
    /// switches LoRAs per request (`lowRankSlots`).
    public func lowRankSlot(_ name: String, rows: Range<Int>, base: Tensor) -> LowRankSlot? {
        lowRankSlots?.slot(prefix + name + ".weight", rows: rows, base: base, quantization: quantization)
    }

    /// `layer` quantized as `quantization` says.
    public func quantized(_ layer: Linear) throws -> Linear { try layer.quantized(quantization, on: backend) }

    /// These weights with `quantization` set.
    public func quantizing(_ quantization: LinearQuantization) -> ModuleWeights {
        var copy = self
        copy.quantization = quantization
        return copy
    }
}
