import FluxCore
import Foundation

/// cuDNN's convolution forward through the C backend API (no C++ frontend): the graphs, the engine configs its
/// heuristics offer, execution plans and their execution. What to run, and when, is `Convolution.swift`'s business.
///
/// Dims are always given in cuDNN's order, X (N, C, H, W), W (K, C, R, S), Y (N, K, Ho, Wo); the memory layout is in
/// the strides (`Layout`). Three graphs (`BiasMode`), bf16 data and f32 compute in all of them:
/// - `.none`: conv(X, W) → Y;
/// - `.fused`: conv(X, W) → T (virtual, f32) → T + B → Y, the channel bias B (1, K, 1, 1) added before the single
///   rounding to bf16;
/// - `.accumulate`: conv(X, W) with β = 1 into a Y the caller has filled with the bias: Y = round(conv + bias), also
///   one rounding (the bias is a bf16 value, so it is exact in Y).
///
/// The entry points and constants are this file's own (from `cudnn_graph.h`, stable across cuDNN 9.x); `CuDNN` only
/// lends its library handle, error text and handle creation, so `CuDNN.swift` stays as the attention code uses it.
final class CuDNNConvolution: @unchecked Sendable {
    typealias Status = Int32
    typealias Raw = OpaquePointer

    enum Layout: String, Sendable, CaseIterable {
        /// Our tensors as they are: (N, C, H, W) row-major, weights (K, C, R, S).
        case nchw
        /// Channels last: (N, H, W, C) and (K, R, S, C), channels padded to `Shape.nhwcChannels` by the caller.
        case nhwc
    }

    enum BiasMode: String, Sendable {
        case none, fused, accumulate
    }

    /// One convolution as cuDNN sees it. For `.nhwc` the channel counts are the padded ones.
    struct Shape: Hashable, Sendable, CustomStringConvertible {
        var batch: Int, channels: Int, height: Int, width: Int
        var outChannels: Int, kernelHeight: Int, kernelWidth: Int
        var stride: Int
        var top: Int, bottom: Int, left: Int, right: Int

        var outHeight: Int { (height + top + bottom - kernelHeight) / stride + 1 }
        var outWidth: Int { (width + left + right - kernelWidth) / stride + 1 }

        /// Multiply-adds × 2.
        var flops: Double {
            2 * Double(batch) * Double(outChannels) * Double(outHeight * outWidth)
                * Double(channels * kernelHeight * kernelWidth)
        }

        var description: String {
            let pad = top == bottom && left == right && top == left ? "\(top)" : "(\(top),\(bottom),\(left),\(right))"
            return "x[\(batch),\(channels),\(height),\(width)] w[\(outChannels),\(channels),\(kernelHeight),"
                + "\(kernelWidth)] s\(stride) p\(pad)"
        }

        /// Channels of the NHWC copies: a multiple of 8, so every pixel's channels start 16 bytes apart (what the
        /// tensor-core kernels want); the extra channels are zeros.
        static func nhwcChannels(_ c: Int) -> Int { (c + 7) / 8 * 8 }

        func dims(_ t: Operand) -> [Int64] {
            switch t {
            case .x: return [batch, channels, height, width].map(Int64.init)
            case .w: return [outChannels, channels, kernelHeight, kernelWidth].map(Int64.init)
            case .y: return [batch, outChannels, outHeight, outWidth].map(Int64.init)
            }
        }

        /// Element strides of an operand's dims in a layout.
        func strides(_ t: Operand, _ layout: Layout) -> [Int64] {
            let d = dims(t)
            let (c, h, w) = (d[1], d[2], d[3])
            switch layout {
            case .nchw: return [c * h * w, h * w, w, 1]
            case .nhwc: return [h * w * c, 1, w * c, c]
            }
        }
    }

    enum Operand { case x, w, y }

    // Descriptor types, attribute types and attribute names (cudnn_graph.h).
    enum Kind: Int32 {
        case pointwise = 0, convolution = 1, engine = 2, engineConfig = 3, engineHeuristics = 4, executionPlan = 5
        case convolutionForward = 10, pointwiseOperation = 13, operationGraph = 15, variantPack = 16, tensor = 17
    }
    enum ValueType: Int32 {
        case handle = 0, dataType = 1, boolean = 2, int64 = 3, float = 4, voidPointer = 6, convolutionMode = 7
        case heuristicsMode = 8, numericalNote = 11, pointwiseMode = 14, descriptor = 15, behaviorNote = 19
    }
    enum Attribute: Int64 {
        case pointwiseMode = 0, pointwiseMathPrecision = 1
        case convComputeType = 100, convMode = 101, convDilations = 102, convFilterStrides = 103
        case convPostPaddings = 104, convPrePaddings = 105, convSpatialDims = 106
        case heuristicsMode = 200, heuristicsGraph = 201, heuristicsResults = 202
        case configEngine = 300
        case planHandle = 400, planEngineConfig = 401, planWorkspaceSize = 402
        case convForwardAlpha = 700, convForwardBeta = 701, convForwardDescriptor = 702
        case convForwardW = 703, convForwardX = 704, convForwardY = 705
        case pointwiseOperationDescriptor = 750, pointwiseOperationX = 751, pointwiseOperationB = 752
        case pointwiseOperationY = 753
        case graphHandle = 800, graphOps = 801
        case tensorAlignment = 900, tensorDataType = 901, tensorDimensions = 902, tensorStrides = 903
        case tensorUniqueID = 906, tensorVirtual = 907
        case packUniqueIDs = 1000, packDataPointers = 1001, packWorkspace = 1003
        case engineGlobalIndex = 1301, engineNumericalNote = 1303, engineBehaviorNote = 1305
    }
    static let dataF32: Int32 = 0, dataBF16: Int32 = 9
    static let crossCorrelation: Int32 = 1
    static let pointwiseAdd: Int32 = 0
    static let heuristicsModeA: Int32 = 3, heuristicsModeFallback: Int32 = 2
    /// CUDNN_NUMERICAL_NOTE_*: tensor cores, and reductions in less than f32 (never taken: conv2d accumulates in f32).
    static let noteTensorCore: Int32 = 0, noteReducedPrecision: Int32 = 2
    /// CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION: the engine compiles its kernel when the plan is finalized.
    static let noteRuntimeCompilation: Int32 = 0

    /// Unique ids of the tensors in a variant pack.
    enum UID: Int64 { case x = 1, w = 2, bias = 3, y = 4, product = 101 }

    let dnn: CuDNN
    private let createDescriptor: @convention(c) (Int32, UnsafeMutablePointer<Raw?>) -> Status
    private let destroyDescriptor: @convention(c) (Raw?) -> Status
    private let setAttribute: @convention(c) (Raw?, Int64, Int32, Int64, UnsafeRawPointer) -> Status
    private let getAttribute: @convention(c) (Raw?, Int64, Int32, Int64, UnsafeMutablePointer<Int64>,
                                              UnsafeMutableRawPointer) -> Status
    private let finalizeDescriptor: @convention(c) (Raw?) -> Status
    private let executePlan: @convention(c) (OpaquePointer?, Raw?, Raw?) -> Status
    private let destroyHandle: (@convention(c) (OpaquePointer?) -> Status)?

    init(_ dnn: CuDNN) throws {
        self.dnn = dnn
        let lib = dnn.library
        createDescriptor = try lib.function("cudnnBackendCreateDescriptor")
        destroyDescriptor = try lib.function("cudnnBackendDestroyDescriptor")
        setAttribute = try lib.function("cudnnBackendSetAttribute")
        getAttribute = try lib.function("cudnnBackendGetAttribute")
        finalizeDescriptor = try lib.function("cudnnBackendFinalize")
        executePlan = try lib.function("cudnnBackendExecute")
        destroyHandle = lib.optionalFunction("cudnnDestroy")
    }

    func destroy(handle: OpaquePointer) { _ = destroyHandle?(handle) }

    /// A backend descriptor that destroys itself.
    final class Descriptor: @unchecked Sendable {
        let raw: Raw
        let kind: Kind
        private let owner: CuDNNConvolution
        init(_ owner: CuDNNConvolution, _ kind: Kind) throws {
            var d: Raw?
            try owner.dnn.check(owner.createDescriptor(kind.rawValue, &d), "cudnnBackendCreateDescriptor(\(kind))")
            guard let d else { throw TensorError.backend("cuda: cudnnBackendCreateDescriptor(\(kind)) returned nothing") }
            raw = d
            self.kind = kind
            self.owner = owner
        }
        deinit { _ = owner.destroyDescriptor(raw) }
    }

    func set<T>(_ d: Descriptor, _ attribute: Attribute, _ type: ValueType, _ values: [T]) throws {
        try values.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            try dnn.check(setAttribute(d.raw, attribute.rawValue, type.rawValue, Int64(values.count), base),
                          "cudnnBackendSetAttribute(\(d.kind).\(attribute))")
        }
    }

    func finalize(_ d: Descriptor, _ what: @autoclosure () -> String) throws {
        try dnn.check(finalizeDescriptor(d.raw), "cudnnBackendFinalize(\(what()))")
    }

    /// Reads up to `capacity` values of a plain attribute (int64, enums as int32).
    func get<T: FixedWidthInteger>(_ d: Descriptor, _ attribute: Attribute, _ type: ValueType, capacity: Int,
                                   as: T.Type) throws -> [T]
    {
        var values = [T](repeating: 0, count: max(capacity, 1))
        var count: Int64 = 0
        try values.withUnsafeMutableBytes { raw in
            try dnn.check(getAttribute(d.raw, attribute.rawValue, type.rawValue, Int64(capacity), &count,
                                       raw.baseAddress!), "cudnnBackendGetAttribute(\(d.kind).\(attribute))")
        }
        return Array(values.prefix(Int(max(0, min(count, Int64(capacity))))))
    }

    /// Fills pre-made descriptors of an attribute whose values are descriptors (heuristics results, a config's
    /// engine); returns how many were filled.
    func get(_ d: Descriptor, _ attribute: Attribute, into targets: [Descriptor]) throws -> Int {
        var handles: [Raw?] = targets.map(\.raw)
        var count: Int64 = 0
        try handles.withUnsafeMutableBytes { raw in
            try dnn.check(getAttribute(d.raw, attribute.rawValue, ValueType.descriptor.rawValue, Int64(targets.count),
                                       &count, raw.baseAddress!), "cudnnBackendGetAttribute(\(d.kind).\(attribute))")
        }
        return Int(max(0, min(count, Int64(targets.count))))
    }

    /// A finalized tensor descriptor: bf16 unless told, 16-byte aligned (every operand starts an allocation, and
    /// NHWC channel counts are padded to multiples of 8).
    func tensor(_ uid: UID, dims: [Int64], strides: [Int64], dataType: Int32 = CuDNNConvolution.dataBF16,
                virtual: Bool = false) throws -> Descriptor
    {
        let t = try Descriptor(self, .tensor)
        try set(t, .tensorDataType, .dataType, [dataType])
        try set(t, .tensorDimensions, .int64, dims)
        try set(t, .tensorStrides, .int64, strides)
        try set(t, .tensorUniqueID, .int64, [uid.rawValue])
        try set(t, .tensorAlignment, .int64, [Int64(16)])
        if virtual { try set(t, .tensorVirtual, .boolean, [true]) }
        try finalize(t, "tensor \(uid) \(dims)")
        return t
    }

    /// The convolution node(s) of one shape, layout and bias mode, finalized into an operation graph (with `handle`
    /// when given; cuDNN 9 also finalizes a graph without one, which is how the tests check it on machines without a
    /// GPU). Holds every descriptor the graph refers to.
    final class Graph: @unchecked Sendable {
        let shape: Shape
        let layout: Layout
        let bias: BiasMode
        let graph: Descriptor
        private let parts: [Descriptor]

        init(_ api: CuDNNConvolution, shape s: Shape, layout: Layout, bias: BiasMode, handle: OpaquePointer?) throws {
            self.shape = s
            self.layout = layout
            self.bias = bias
            let x = try api.tensor(.x, dims: s.dims(.x), strides: s.strides(.x, layout))
            let w = try api.tensor(.w, dims: s.dims(.w), strides: s.strides(.w, layout))
            let y = try api.tensor(.y, dims: s.dims(.y), strides: s.strides(.y, layout))
            let conv = try Descriptor(api, .convolution)
            try api.set(conv, .convSpatialDims, .int64, [Int64(2)])
            try api.set(conv, .convComputeType, .dataType, [CuDNNConvolution.dataF32])
            try api.set(conv, .convMode, .convolutionMode, [CuDNNConvolution.crossCorrelation])
            try api.set(conv, .convDilations, .int64, [Int64(1), 1])
            try api.set(conv, .convFilterStrides, .int64, [Int64(s.stride), Int64(s.stride)])
            try api.set(conv, .convPrePaddings, .int64, [Int64(s.top), Int64(s.left)])
            try api.set(conv, .convPostPaddings, .int64, [Int64(s.bottom), Int64(s.right)])
            try api.finalize(conv, "convolution \(s)")

            var parts = [x, w, y, conv]
            let forward = try Descriptor(api, .convolutionForward)
            try api.set(forward, .convForwardX, .descriptor, [x.raw])
            try api.set(forward, .convForwardW, .descriptor, [w.raw])
            try api.set(forward, .convForwardDescriptor, .descriptor, [conv.raw])
            try api.set(forward, .convForwardAlpha, .float, [Float(1)])
            try api.set(forward, .convForwardBeta, .float, [Float(bias == .accumulate ? 1 : 0)])
            var operations = [forward]
            if bias == .fused {
                let product = try api.tensor(.product, dims: s.dims(.y), strides: s.strides(.y, layout),
                                             dataType: CuDNNConvolution.dataF32, virtual: true)
                let b = try api.tensor(.bias, dims: [1, Int64(s.outChannels), 1, 1],
                                       strides: [Int64(s.outChannels), 1, Int64(s.outChannels), Int64(s.outChannels)])
                try api.set(forward, .convForwardY, .descriptor, [product.raw])
                let add = try Descriptor(api, .pointwise)
                try api.set(add, .pointwiseMode, .pointwiseMode, [CuDNNConvolution.pointwiseAdd])
                try api.set(add, .pointwiseMathPrecision, .dataType, [CuDNNConvolution.dataF32])
                try api.finalize(add, "pointwise add")
                let addition = try Descriptor(api, .pointwiseOperation)
                try api.set(addition, .pointwiseOperationDescriptor, .descriptor, [add.raw])
                try api.set(addition, .pointwiseOperationX, .descriptor, [product.raw])
                try api.set(addition, .pointwiseOperationB, .descriptor, [b.raw])
                try api.set(addition, .pointwiseOperationY, .descriptor, [y.raw])
                try api.finalize(forward, "convolution forward \(s)")
                try api.finalize(addition, "bias addition \(s)")
                parts += [product, b, add]
                operations.append(addition)
            } else {
                try api.set(forward, .convForwardY, .descriptor, [y.raw])
                try api.finalize(forward, "convolution forward \(s)")
            }
            parts += operations
            let graph = try Descriptor(api, .operationGraph)
            try api.set(graph, .graphOps, .descriptor, operations.map(\.raw))
            if let handle { try api.set(graph, .graphHandle, .handle, [handle]) }
            try api.finalize(graph, "operation graph \(s) \(layout) bias \(bias)")
            self.graph = graph
            self.parts = parts
        }

        /// The engine configs cuDNN's heuristics rank for this graph (mode A, else the fallback list), best first.
        func configs(_ api: CuDNNConvolution, limit: Int) throws -> [Descriptor] {
            for mode in [CuDNNConvolution.heuristicsModeA, CuDNNConvolution.heuristicsModeFallback] {
                let heuristics = try Descriptor(api, .engineHeuristics)
                try api.set(heuristics, .heuristicsGraph, .descriptor, [graph.raw])
                try api.set(heuristics, .heuristicsMode, .heuristicsMode, [mode])
                try api.finalize(heuristics, "heuristics")
                let configs = try (0..<limit).map { _ in try Descriptor(api, .engineConfig) }
                let found = try api.get(heuristics, .heuristicsResults, into: configs)
                if found > 0 { return Array(configs.prefix(found)) }
            }
            return []
        }
    }

    /// What a config's engine says of itself (for choosing and for the log); unknown fields stay empty.
    struct EngineInfo: Sendable, CustomStringConvertible {
        var index: Int64 = -1
        var numericalNotes: [Int32] = []
        var behaviorNotes: [Int32] = []

        var tensorCores: Bool { numericalNotes.contains(CuDNNConvolution.noteTensorCore) }
        var reducedPrecision: Bool { numericalNotes.contains(CuDNNConvolution.noteReducedPrecision) }
        var runtimeCompiled: Bool { behaviorNotes.contains(CuDNNConvolution.noteRuntimeCompilation) }

        var description: String {
            "engine \(index)" + (tensorCores ? " tc" : "") + (runtimeCompiled ? " rtc" : "")
                + (reducedPrecision ? " reduced-precision" : "")
        }
    }

    func info(of config: Descriptor) -> EngineInfo {
        var info = EngineInfo()
        guard let engine = try? Descriptor(self, .engine),
              (try? get(config, .configEngine, into: [engine])) == 1 else { return info }
        info.index = (try? get(engine, .engineGlobalIndex, .int64, capacity: 1, as: Int64.self).first) ?? -1
        info.numericalNotes = (try? get(engine, .engineNumericalNote, .numericalNote, capacity: 16, as: Int32.self)) ?? []
        info.behaviorNotes = (try? get(engine, .engineBehaviorNote, .behaviorNote, capacity: 16, as: Int32.self)) ?? []
        return info
    }

    /// An execution plan for one engine config of a graph; keeps the graph alive.
    final class Plan: @unchecked Sendable {
        let graph: Graph
        let plan: Descriptor
        let workspaceSize: Int
        let engine: EngineInfo
        /// Host time cuDNN took to finalize the plan (a runtime-compiled engine compiles its kernel here).
        let finalizeMilliseconds: Double

        init(_ api: CuDNNConvolution, graph: Graph, config: Descriptor, engine: EngineInfo, handle: OpaquePointer)
            throws
        {
            let start = DispatchTime.now().uptimeNanoseconds
            let plan = try Descriptor(api, .executionPlan)
            try api.set(plan, .planHandle, .handle, [handle])
            try api.set(plan, .planEngineConfig, .descriptor, [config.raw])
            try api.finalize(plan, "execution plan (\(engine))")
            let size = try api.get(plan, .planWorkspaceSize, .int64, capacity: 1, as: Int64.self).first ?? 0
            self.graph = graph
            self.plan = plan
            self.engine = engine
            workspaceSize = Int(max(0, size))
            finalizeMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        }
    }

    /// Queues a plan on the handle's stream. `bias` only for `.fused` graphs.
    func execute(_ plan: Plan, handle: OpaquePointer, x: CUdeviceptr, w: CUdeviceptr, bias: CUdeviceptr?,
                 y: CUdeviceptr, workspace: CUdeviceptr) throws
    {
        var ids: [Int64] = [UID.x.rawValue, UID.w.rawValue, UID.y.rawValue]
        var pointers: [UnsafeRawPointer?] = [x, w, y].map { UnsafeRawPointer(bitPattern: UInt($0)) }
        if plan.graph.bias == .fused, let bias {
            ids.append(UID.bias.rawValue)
            pointers.append(UnsafeRawPointer(bitPattern: UInt(bias)))
        }
        let pack = try Descriptor(self, .variantPack)
        try set(pack, .packUniqueIDs, .int64, ids)
        try set(pack, .packDataPointers, .voidPointer, pointers)
        try set(pack, .packWorkspace, .voidPointer, [UnsafeRawPointer(bitPattern: UInt(workspace))])
        try finalize(pack, "variant pack")
        try dnn.check(executePlan(handle, plan.plan.raw, pack.raw), "cudnnBackendExecute(convolution)")
    }
}
