import FluxCore
import Foundation

/// One weight a module asks for: its reference name and shape.
public struct ExpectedWeight: Sendable, Equatable, Hashable {
    public var name: String
    public var shape: [Int]

    public init(name: String, shape: [Int]) { (self.name, self.shape) = (name, shape) }
}

/// Records the weights a module tree asks for while it is built, so that the expected names and shapes of a
/// checkpoint come from the model code itself instead of a hand-kept list.
///
/// `ModuleWeights(recording:)` hands out tensors that hold no memory (`RecordedStorage`) on `RecordingBackend`, which
/// runs no op but the views module constructors take (`slice`); building a full-size FLUX.1-dev this way costs
/// microseconds per weight.
public final class WeightRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [ExpectedWeight] = []
    private var seen: Set<String> = []
    private var linear: Set<String> = []

    public init() {}

    /// Every weight asked for, in the order the module tree asked; a name asked for twice is listed once.
    public var weights: [ExpectedWeight] {
        lock.lock()
        defer { lock.unlock() }
        return recorded
    }

    /// The weights asked for as a linear layer's (out, in) matrix: what a LoRA may adapt.
    public var linearWeights: [ExpectedWeight] {
        lock.lock()
        defer { lock.unlock() }
        return recorded.filter { linear.contains($0.name) }
    }

    func recordLinear(_ name: String) {
        lock.lock()
        defer { lock.unlock() }
        linear.insert(name)
    }

    func record(_ name: String, shape: [Int]) {
        lock.lock()
        defer { lock.unlock() }
        if seen.insert(name).inserted { recorded.append(ExpectedWeight(name: name, shape: shape)) }
    }

    /// The weights `build` asks for when it builds a module tree from the weights it is given.
    public static func expectedWeights(_ build: (ModuleWeights) throws -> Void) rethrows -> [ExpectedWeight] {
        let recorder = WeightRecorder()
        try build(ModuleWeights(recording: recorder))
        return recorder.weights
    }

    /// The linear layers' weights `build` asks for (`ModuleWeights.linearWeight`), in the order asked.
    public static func linearWeights(_ build: (ModuleWeights) throws -> Void) rethrows -> [ExpectedWeight] {
        let recorder = WeightRecorder()
        try build(ModuleWeights(recording: recorder))
        return recorder.linearWeights
    }
}

/// Storage of a recorded weight: none.
final class RecordedStorage: TensorStorage {
    var byteCount: Int { 0 }
}

/// The backend of a recording `ModuleWeights`. Module constructors only take views of their weights (a single
/// block's rows of `linear1`), which it answers with shapes; every computing op throws, since its tensors hold no
/// numbers.
final class RecordingBackend: Backend {
    var name: String { "weight-recorder" }

    private func shapeOnly(_ shape: [Int]) -> Tensor { Tensor(shape: shape, dtype: .f32, storage: RecordedStorage()) }
    private func noNumbers(_ op: String) -> TensorError { .foreignStorage(op: op, backend: name) }

    func upload(_ host: HostTensor) throws -> Tensor { shapeOnly(host.shape) }
    /// FluxCore has checked the operands (`Backend.slice`); the view's shape is all there is to give.
    func uncheckedSlice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor {
        var shape = x.shape
        shape[axis < 0 ? axis + shape.count : axis] = count
        return shapeOnly(shape)
    }

    func download(_ tensor: Tensor) throws -> HostTensor { throw noNumbers("download") }
    func synchronize() throws {}
    func uncheckedLinear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor {
        throw noNumbers("linear")
    }
    func uncheckedQuantizeRows(_ x: Tensor) throws -> QuantizedRows { throw noNumbers("quantizeRows") }
    func uncheckedLinear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?, activation: Activation) throws
        -> Tensor
    {
        throw noNumbers("linear")
    }
    func uncheckedAttention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor?, causal: Bool) throws
        -> Tensor
    {
        throw noNumbers("attention")
    }
    func uncheckedLayerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        throw noNumbers("layerNorm")
    }
    func uncheckedRmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor { throw noNumbers("rmsNorm") }
    func uncheckedModulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor {
        throw noNumbers("modulatedLayerNorm")
    }
    func uncheckedActivation(_ x: Tensor, _ kind: Activation) throws -> Tensor { throw noNumbers("activation") }
    func uncheckedAdd(_ a: Tensor, _ b: Tensor) throws -> Tensor { throw noNumbers("add") }
    func uncheckedMultiply(_ a: Tensor, _ b: Tensor) throws -> Tensor { throw noNumbers("multiply") }
    func uncheckedGatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws -> Tensor {
        throw noNumbers("gatedAdd")
    }
    func uncheckedConcat(_ parts: [Tensor], axis: Int) throws -> Tensor { throw noNumbers("concat") }
    func uncheckedPermute(_ x: Tensor, _ order: [Int]) throws -> Tensor { throw noNumbers("permute") }
    func uncheckedEmbedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws -> Tensor {
        throw noNumbers("embedding")
    }
    func uncheckedScaleShift(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor { throw noNumbers("scaleShift") }
    func uncheckedAddScaled(_ a: Tensor, _ b: Tensor, scale: Float) throws -> Tensor { throw noNumbers("addScaled") }
    func uncheckedAbsSum(_ x: Tensor) throws -> Float { throw noNumbers("absSum") }
    func uncheckedConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding2D) throws -> Tensor {
        throw noNumbers("conv2d")
    }
    func uncheckedGroupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                            activation: Activation) throws -> Tensor
    {
        throw noNumbers("groupNorm")
    }
    func uncheckedUpsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor { throw noNumbers("upsampleNearest") }
}
