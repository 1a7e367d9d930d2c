import FluxCore

/// cuDNN 9 (`libcudnn.so.9`), loaded with `dlopen`, used through its C backend API (no C++ frontend) for one thing:
/// the fused flash-attention forward, the single-node `CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR`.
///
/// Flow per shape (then cached): tensor descriptors → SDPA operation → operation graph → heuristics (mode A) →
/// the first engine config whose execution plan finalizes → workspace size. Per call: a variant pack of the device
/// pointers and the by-value scale → execute on the backend's stream.
final class CuDNN: @unchecked Sendable {
    typealias Status = Int32
    typealias Descriptor = OpaquePointer

    // Constants from cudnn_graph.h (cuDNN 9.x; the enums are stable across 9.x).
    enum DescriptorType: Int32 {
        case engineConfig = 3, engineHeuristics = 4, executionPlan = 5, operationGraph = 15, variantPack = 16
        case tensor = 17, sdpaForward = 41
    }
    enum AttributeType: Int32 {
        case handle = 0, dataType = 1, boolean = 2, int64 = 3, voidPointer = 6, heuristicsMode = 8, descriptor = 15
    }
    enum Attribute: Int64 {
        case heuristicsMode = 200, heuristicsGraph = 201, heuristicsResults = 202
        case planHandle = 400, planEngineConfig = 401, planWorkspaceSize = 402
        case graphHandle = 800, graphOps = 801
        case tensorAlignment = 900, tensorDataType = 901, tensorDimensions = 902, tensorStrides = 903
        case tensorUniqueID = 906, tensorByValue = 908
        case packUniqueIDs = 1000, packDataPointers = 1001, packWorkspace = 1003
        case sdpaQ = 2800, sdpaK = 2801, sdpaV = 2802, sdpaO = 2803, sdpaScale = 2805
    }
    static let dataBF16: Int32 = 9
    static let dataF32: Int32 = 0
    static let heuristicsModeA: Int32 = 3

    let library: DynamicLibrary
    let version: Int

    private let cudnnGetVersion: @convention(c) () -> Int
    private let cudnnGetErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?
    private let cudnnGetLastErrorString: (@convention(c) (UnsafeMutablePointer<CChar>, Int) -> Void)?
    private let cudnnCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    private let cudnnSetStream: @convention(c) (OpaquePointer?, CUhandle?) -> Status
    private let cudnnBackendCreateDescriptor: @convention(c) (Int32, UnsafeMutablePointer<Descriptor?>) -> Status
    private let cudnnBackendDestroyDescriptor: @convention(c) (Descriptor?) -> Status
    private let cudnnBackendSetAttribute: @convention(c) (Descriptor?, Int64, Int32, Int64, UnsafeRawPointer) -> Status
    private let cudnnBackendGetAttribute: @convention(c) (
        Descriptor?, Int64, Int32, Int64, UnsafeMutablePointer<Int64>, UnsafeMutableRawPointer
    ) -> Status
    private let cudnnBackendFinalize: @convention(c) (Descriptor?) -> Status
    private let cudnnBackendExecute: @convention(c) (OpaquePointer?, Descriptor?, Descriptor?) -> Status

    init(search: LibrarySearch = LibrarySearch()) throws {
        let lib = try DynamicLibrary.open(["libcudnn.so.9"], override: search.paths.cudnn,
                                          what: "cuDNN 9; attention uses its own kernel", search: search)
        library = lib
        cudnnGetVersion = try lib.function("cudnnGetVersion")
        cudnnGetErrorString = try lib.function("cudnnGetErrorString")
        cudnnGetLastErrorString = lib.optionalFunction("cudnnGetLastErrorString")
        cudnnCreate = try lib.function("cudnnCreate")
        cudnnSetStream = try lib.function("cudnnSetStream")
        cudnnBackendCreateDescriptor = try lib.function("cudnnBackendCreateDescriptor")
        cudnnBackendDestroyDescriptor = try lib.function("cudnnBackendDestroyDescriptor")
        cudnnBackendSetAttribute = try lib.function("cudnnBackendSetAttribute")
        cudnnBackendGetAttribute = try lib.function("cudnnBackendGetAttribute")
        cudnnBackendFinalize = try lib.function("cudnnBackendFinalize")
        cudnnBackendExecute = try lib.function("cudnnBackendExecute")
        version = cudnnGetVersion()
        guard version >= 90_000 else {
            throw TensorError.backend("cuda: \(lib.path) is cuDNN \(version); the SDPA node needs cuDNN 9")
        }
    }

    func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        var text = cudnnGetErrorString(status).map { String(cString: $0) } ?? "cudnnStatus \(status)"
        if let last = cudnnGetLastErrorString {
            var buffer = [CChar](repeating: 0, count: 1024)
            last(&buffer, buffer.count)
            let detail = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !detail.isEmpty { text += " | " + detail.split(separator: "\n").joined(separator: " ") }
        }
        throw TensorError.backend("cuda: \(call()): \(text)")
    }

    func createHandle(stream: CUhandle) throws -> OpaquePointer {
        var handle: OpaquePointer?
        try check(cudnnCreate(&handle), "cudnnCreate")
        guard let handle else { throw TensorError.backend("cuda: cudnnCreate returned no handle") }
        try check(cudnnSetStream(handle, stream), "cudnnSetStream")
        return handle
    }

    /// A backend descriptor that destroys itself.
    final class Owned: @unchecked Sendable {
        let descriptor: Descriptor
        private let owner: CuDNN
        init(_ owner: CuDNN, _ type: DescriptorType) throws {
            var d: Descriptor?
            try owner.check(owner.cudnnBackendCreateDescriptor(type.rawValue, &d), "cudnnBackendCreateDescriptor(\(type))")
            guard let d else { throw TensorError.backend("cuda: cudnnBackendCreateDescriptor(\(type)) returned nothing") }
            descriptor = d
            self.owner = owner
        }
        deinit { _ = owner.cudnnBackendDestroyDescriptor(descriptor) }
    }

    func set<T>(_ d: Owned, _ attribute: Attribute, _ type: AttributeType, _ values: [T]) throws {
        try values.withUnsafeBytes { raw in
            try check(cudnnBackendSetAttribute(d.descriptor, attribute.rawValue, type.rawValue, Int64(values.count),
                                               raw.baseAddress!), "cudnnBackendSetAttribute(\(attribute))")
        }
    }

    func finalize(_ d: Owned, _ what: String) throws {
        try check(cudnnBackendFinalize(d.descriptor), "cudnnBackendFinalize(\(what))")
    }

    /// A tensor descriptor: bf16 (or a by-value f32 scalar), dims and strides in elements.
    func tensor(id: Int64, dims: [Int64], strides: [Int64], dataType: Int32 = CuDNN.dataBF16,
                byValue: Bool = false) throws -> Owned
    {
        let t = try Owned(self, .tensor)
        try set(t, .tensorDataType, .dataType, [dataType])
        try set(t, .tensorDimensions, .int64, dims)
        try set(t, .tensorStrides, .int64, strides)
        try set(t, .tensorUniqueID, .int64, [id])
        try set(t, .tensorAlignment, .int64, [Int64(byValue ? 4 : 16)])
        if byValue { try set(t, .tensorByValue, .boolean, [true]) }
        try finalize(t, "tensor \(id)")
        return t
    }

    /// The fused attention forward for one shape: `o = softmax(q·kᵀ·scale)·v`, q and o (B, Sq, H, D) and k, v
    /// (B, Sk, H, D) in memory, described to cuDNN as dims (B, H, S, D) with the strides of that memory, so nothing is
    /// transposed. Holds every descriptor the plan was built from.
    final class SDPAPlan: @unchecked Sendable {
        let plan: Owned
        let workspaceSize: Int
        /// Rank of the engine config in cuDNN's heuristics list.
        let engineIndex: Int
        private let keep: [Owned]

        private init(plan: Owned, workspaceSize: Int, engineIndex: Int, keep: [Owned]) {
            (self.plan, self.workspaceSize, self.engineIndex, self.keep) = (plan, workspaceSize, engineIndex, keep)
        }

        /// Execution plans for every engine config cuDNN's heuristics offer for this shape (up to 8, in its order)
        /// that finalize; throws when none does. The caller times them and keeps one.
        static func candidates(_ dnn: CuDNN, handle: OpaquePointer, batch: Int, heads: Int, sq: Int, sk: Int,
                               dim: Int) throws -> [SDPAPlan]
        {
            let (b, h, d) = (Int64(batch), Int64(heads), Int64(dim))
            let qDims = [b, h, Int64(sq), d], kDims = [b, h, Int64(sk), d]
            let qStrides = [Int64(sq) * h * d, d, h * d, 1], kStrides = [Int64(sk) * h * d, d, h * d, 1]
            let q = try dnn.tensor(id: 1, dims: qDims, strides: qStrides)
            let k = try dnn.tensor(id: 2, dims: kDims, strides: kStrides)
            let v = try dnn.tensor(id: 3, dims: kDims, strides: kStrides)
            let o = try dnn.tensor(id: 4, dims: qDims, strides: qStrides)
            let scale = try dnn.tensor(id: 5, dims: [1, 1, 1, 1], strides: [1, 1, 1, 1], dataType: CuDNN.dataF32,
                                       byValue: true)
            let op = try Owned(dnn, .sdpaForward)
            for (attribute, t) in [(Attribute.sdpaQ, q), (.sdpaK, k), (.sdpaV, v), (.sdpaO, o), (.sdpaScale, scale)] {
                try dnn.set(op, attribute, .descriptor, [t.descriptor])
            }
            try dnn.finalize(op, "SDPA forward")
            let graph = try Owned(dnn, .operationGraph)
            try dnn.set(graph, .graphOps, .descriptor, [op.descriptor])
            try dnn.set(graph, .graphHandle, .handle, [handle])
            try dnn.finalize(graph, "operation graph")
            let heuristics = try Owned(dnn, .engineHeuristics)
            try dnn.set(heuristics, .heuristicsGraph, .descriptor, [graph.descriptor])
            try dnn.set(heuristics, .heuristicsMode, .heuristicsMode, [CuDNN.heuristicsModeA])
            try dnn.finalize(heuristics, "heuristics")
            let configs = try (0..<8).map { _ in try Owned(dnn, .engineConfig) }
            var handles: [Descriptor?] = configs.map(\.descriptor)
            var found: Int64 = 0
            try handles.withUnsafeMutableBytes { raw in
                try dnn.check(dnn.cudnnBackendGetAttribute(heuristics.descriptor, Attribute.heuristicsResults.rawValue,
                                                           AttributeType.descriptor.rawValue, Int64(configs.count),
                                                           &found, raw.baseAddress!), "heuristics results")
            }
            let keep = [q, k, v, o, scale, op, graph, heuristics] + configs
            var plans: [SDPAPlan] = []
            var lastError: Error = TensorError.backend("cuda: cuDNN offers no engine for SDPA \(qDims) \(kDims)")
            for index in 0..<Int(min(found, Int64(configs.count))) {
                do {
                    let plan = try Owned(dnn, .executionPlan)
                    try dnn.set(plan, .planHandle, .handle, [handle])
                    try dnn.set(plan, .planEngineConfig, .descriptor, [configs[index].descriptor])
                    try dnn.finalize(plan, "execution plan \(index)")
                    var size: Int64 = 0, count: Int64 = 0
                    try dnn.check(dnn.cudnnBackendGetAttribute(plan.descriptor, Attribute.planWorkspaceSize.rawValue,
                                                               AttributeType.int64.rawValue, 1, &count, &size),
                                  "workspace size")
                    plans.append(SDPAPlan(plan: plan, workspaceSize: Int(size), engineIndex: index, keep: keep))
                } catch {
                    lastError = error
                }
            }
            if plans.isEmpty { throw lastError }
            return plans
        }
    }

    /// Runs a plan on the handle's stream.
    func execute(_ plan: SDPAPlan, handle: OpaquePointer, q: CUdeviceptr, k: CUdeviceptr, v: CUdeviceptr,
                 o: CUdeviceptr, scale: Float, workspace: CUdeviceptr) throws
    {
        var scaleValue = scale
        try withUnsafeMutablePointer(to: &scaleValue) { scalePointer in
            let pack = try Owned(self, .variantPack)
            try set(pack, .packUniqueIDs, .int64, [Int64(1), 2, 3, 4, 5])
            let pointers: [UnsafeRawPointer?] = [q, k, v, o].map { UnsafeRawPointer(bitPattern: UInt($0)) }
                + [UnsafeRawPointer(scalePointer)]
            try set(pack, .packDataPointers, .voidPointer, pointers)
            try set(pack, .packWorkspace, .voidPointer, [UnsafeRawPointer(bitPattern: UInt(workspace))])
            try finalize(pack, "variant pack")
            try check(cudnnBackendExecute(handle, plan.plan.descriptor, pack.descriptor), "cudnnBackendExecute(SDPA)")
        }
    }
}
