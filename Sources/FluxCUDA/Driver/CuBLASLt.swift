import FluxCore

/// cuBLASLt (`libcublasLt.so.13`), loaded with `dlopen`: bf16 matrix products with f32 accumulation and a fused
/// bias / GELU-bias epilogue, strided batches and accumulation into the output (β = 1). Only what `linear` and
/// `attention` need is wrapped.
final class CuBLASLt: @unchecked Sendable {
    typealias Status = Int32
    typealias Handle = OpaquePointer
    typealias OutHandle = UnsafeMutablePointer<Handle?>

    /// `cublasLtEpilogue_t`. cuBLASLt's GELU is the tanh approximation (checked on the device by the selftest's
    /// "linear geluTanh tail" case, where tanh and erf GELU differ by 10 % and more).
    enum Epilogue: Int32, Hashable {
        case none = 1
        case bias = 4
        case gelu = 32
        case geluBias = 36
    }

    // Constants from cublasLt.h / cublas_api.h / library_types.h (CUDA 13).
    private static let computeF32: Int32 = 68          // CUBLAS_COMPUTE_32F
    private static let typeF32: Int32 = 0              // CUDA_R_32F
    private static let typeBF16: Int32 = 14            // CUDA_R_16BF
    private static let typeE4M3: Int32 = 28            // CUDA_R_8F_E4M3
    private static let opT: Int32 = 1                  // CUBLAS_OP_T
    private static let descTransA: Int32 = 3           // CUBLASLT_MATMUL_DESC_TRANSA
    private static let descEpilogue: Int32 = 7         // CUBLASLT_MATMUL_DESC_EPILOGUE
    private static let descBiasPointer: Int32 = 8      // CUBLASLT_MATMUL_DESC_BIAS_POINTER
    private static let descBiasDataType: Int32 = 26    // CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE
    private static let descScalePointer: (a: Int32, b: Int32) = (17, 18)  // CUBLASLT_MATMUL_DESC_{A,B}_SCALE_POINTER
    private static let descScaleMode: (a: Int32, b: Int32) = (31, 32)     // CUBLASLT_MATMUL_DESC_{A,B}_SCALE_MODE
    private static let scaleOuterVector: Int32 = 3     // CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
    private static let descFastAccumulation: Int32 = 25  // CUBLASLT_MATMUL_DESC_FAST_ACCUM (int8)
    private static let prefMaxWorkspace: Int32 = 1     // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
    /// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32, default 256).
    private static let prefMinAlignment: [Int32] = [5, 6, 7, 8]
    private static let layoutBatchCount: Int32 = 5     // CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT (int32)
    private static let layoutBatchStride: Int32 = 6    // CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET (int64, elements)
    /// sizeof(cublasLtMatmulHeuristicResult_t) in cublasLt.h (CUDA 12 and 13): algo (`cublasLtMatmulAlgo_t`,
    /// 8 × uint64) at 0, workspaceSize (size_t) at 64, state (cublasStatus_t, int32) at 72, wavesCount (float) at 76,
    /// reserved (4 × int32) at 80.
    static let heuristicResultSize = 96
    /// sizeof(cublasLtMatmulAlgo_t).
    static let algoSize = 64
    /// Most heuristic results a plan asks for.
    static let maxCandidates = 32

    let library: DynamicLibrary
    let version: Int

    private let cublasLtCreate: @convention(c) (OutHandle) -> Status
    private let cublasLtGetVersion: @convention(c) () -> Int
    private let cublasLtGetStatusString: @convention(c) (Status) -> UnsafePointer<CChar>?
    private let cublasLtMatmulDescCreate: @convention(c) (OutHandle, Int32, Int32) -> Status
    private let cublasLtMatmulDescDestroy: @convention(c) (Handle?) -> Status
    private let cublasLtMatmulDescSetAttribute: @convention(c) (Handle?, Int32, UnsafeRawPointer, Int) -> Status
    private let cublasLtMatrixLayoutCreate: @convention(c) (OutHandle, Int32, UInt64, UInt64, Int64) -> Status
    private let cublasLtMatrixLayoutDestroy: @convention(c) (Handle?) -> Status
    private let cublasLtMatrixLayoutSetAttribute: @convention(c) (Handle?, Int32, UnsafeRawPointer, Int) -> Status
    private let cublasLtMatmulPreferenceCreate: @convention(c) (OutHandle) -> Status
    private let cublasLtMatmulPreferenceSetAttribute: @convention(c) (Handle?, Int32, UnsafeRawPointer, Int) -> Status
    private let cublasLtMatmulPreferenceDestroy: @convention(c) (Handle?) -> Status
    private let cublasLtMatmulAlgoGetHeuristic: @convention(c) (
        Handle?, Handle?, Handle?, Handle?, Handle?, Handle?, Handle?, Int32, UnsafeMutableRawPointer,
        UnsafeMutablePointer<Int32>
    ) -> Status
    /// Optional: only for describing an algorithm in reports.
    private let cublasLtMatmulAlgoConfigGetAttribute: (@convention(c) (
        UnsafeRawPointer, Int32, UnsafeMutableRawPointer, Int, UnsafeMutablePointer<Int>?
    ) -> Status)?
    private let cublasLtMatmul: @convention(c) (
        Handle?, Handle?, UnsafeRawPointer, CUdeviceptr, Handle?, CUdeviceptr, Handle?, UnsafeRawPointer, CUdeviceptr,
        Handle?, CUdeviceptr, Handle?, UnsafeRawPointer?, CUdeviceptr, Int, CUhandle?
    ) -> Status

    init(search: LibrarySearch = LibrarySearch()) throws {
        let lib = try DynamicLibrary.open(["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
                                          override: search.paths.cublasLt,
                                          what: "cuBLASLt; give its folder with --cuda-lib-dir", search: search)
        library = lib
        cublasLtCreate = try lib.function("cublasLtCreate")
        cublasLtGetVersion = try lib.function("cublasLtGetVersion")
        cublasLtGetStatusString = try lib.function("cublasLtGetStatusString")
        cublasLtMatmulDescCreate = try lib.function("cublasLtMatmulDescCreate")
        cublasLtMatmulDescDestroy = try lib.function("cublasLtMatmulDescDestroy")
        cublasLtMatmulDescSetAttribute = try lib.function("cublasLtMatmulDescSetAttribute")
        cublasLtMatrixLayoutCreate = try lib.function("cublasLtMatrixLayoutCreate")
        cublasLtMatrixLayoutDestroy = try lib.function("cublasLtMatrixLayoutDestroy")
        cublasLtMatrixLayoutSetAttribute = try lib.function("cublasLtMatrixLayoutSetAttribute")
        cublasLtMatmulPreferenceCreate = try lib.function("cublasLtMatmulPreferenceCreate")
        cublasLtMatmulPreferenceSetAttribute = try lib.function("cublasLtMatmulPreferenceSetAttribute")
        cublasLtMatmulPreferenceDestroy = try lib.function("cublasLtMatmulPreferenceDestroy")
        cublasLtMatmulAlgoGetHeuristic = try lib.function("cublasLtMatmulAlgoGetHeuristic")
        cublasLtMatmul = try lib.function("cublasLtMatmul")
        cublasLtMatmulAlgoConfigGetAttribute = try? lib.function("cublasLtMatmulAlgoConfigGetAttribute")
        version = cublasLtGetVersion()
    }

    func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        let text = cublasLtGetStatusString(status).map { String(cString: $0) } ?? "cublasStatus \(status)"
        throw TensorError.backend("cuda: \(call()): \(text)")
    }

    func createHandle() throws -> Handle {
        var handle: Handle?
        try check(cublasLtCreate(&handle), "cublasLtCreate")
        guard let handle else { throw TensorError.backend("cuda: cublasLtCreate returned no handle") }
        return handle
    }

    /// One product in cuBLASLt's column-major terms: `D (m × n) = op(A) (m × k) · B (k × n)`, op(A) = Aᵀ when
    /// `transA` (A then stored k × m). Leading dimensions in elements. All bf16, f32 accumulation.
    ///
    /// Row-major callers: a row-major (R, C) matrix is the column-major (C, R) matrix with leading dimension C.
    /// - `linear` Y (M, N) = X (M, K) · Wᵀ, W (N, K): D = Yᵀ (N × M, ld N) = W · Xᵀ, so m = N, n = M, transA with
    ///   A = W stored as Wᵀ (K × N, ld K), B = Xᵀ (K × M, ld K). The bias runs along D's rows (N), as the epilogue wants.
    /// - `conv2d` out (Cout, P) = Wc (Cout, K) · cols (K, P): D = outᵀ (P × Cout, ld P) = colsᵀ · Wcᵀ, so m = P,
    ///   n = Cout, A = colsᵀ (P × K, ld P) untransposed, B = Wcᵀ (K × Cout, ld K).
    /// - `attention` with a bias (T5): per head, scores and then P·V as strided batches over the heads (see there).
    struct Shape: Hashable {
        var m: Int, n: Int, k: Int
        var transA: Bool
        var lda: Int, ldb: Int, ldd: Int
        var epilogue: Epilogue
        /// D (and C) in f32 instead of bf16, for a caller that adds bias or activation before rounding once.
        var outputF32 = false
        /// Strided batch: `batch` products, matrix i of A, B, D at i · stride elements from the first.
        var batch = 1
        var strideA = 0, strideB = 0, strideD = 0
        /// Byte alignment every A, B, C, D pointer (and batch offset) is known to have (256 unless told).
        var alignment = 256
        /// A and B in f8 e4m3 with outer-vector scales (f32, one per row of op(A) and per column of B, given at each
        /// call): `D = (scaleA[i] · scaleB[j] · Σ op(A)[i, l] · B[l, j]) + bias`, D bf16 or f32. Needs transA (cuBLASLt
        /// runs fp8 only as "TN") and compute capability 8.9 or later.
        var fp8 = false
        /// fp8 only: accumulate in the tensor cores' reduced precision without periodic promotion to f32 (faster).
        var fastAccumulation = false

        /// For messages: "fp8 3072x4608x15360 bias fast-accumulation".
        var label: String {
            (fp8 ? "fp8 " : "") + "\(m)x\(n)x\(k)" + (batch > 1 ? " ×\(batch)" : "") + " \(epilogue)"
                + (outputF32 ? " f32" : "") + (fp8 && fastAccumulation ? " fast-accumulation" : "")
        }
    }

    /// Descriptors and the algorithms cuBLASLt's heuristic offers for one `Shape`, made once and reused. The
    /// heuristic ranks its results by estimated time; `candidateCount` of them are kept (state success, workspace
    /// within the limit) and the plan runs the one `choose` picked, the first unless told.
    final class Plan: @unchecked Sendable {
        let desc: Handle
        let a: Handle, b: Handle, d: Handle
        let shape: Shape
        /// `candidateCount` × `cublasLtMatmulAlgo_t` (64 bytes each), in the heuristic's order.
        private let algos: UnsafeMutableRawPointer
        /// Per candidate: the workspace it needs (bytes) and cuBLASLt's predicted waves of thread blocks.
        let workspaceSizes: [Int]
        let wavesCounts: [Float]
        /// The candidate `algo` and `workspaceSize` describe.
        private(set) var chosen = 0
        /// True until the caller has settled on a candidate (set by the caller; plans with one candidate start
        /// settled).
        var needsChoice: Bool
        private let owner: CuBLASLt

        var candidateCount: Int { workspaceSizes.count }
        /// The chosen `cublasLtMatmulAlgo_t`.
        var algo: UnsafeRawPointer { algo(chosen) }
        var workspaceSize: Int { workspaceSizes[chosen] }

        /// Candidate `index`'s algorithm (`index` in `0..<candidateCount`).
        func algo(_ index: Int) -> UnsafeRawPointer {
            UnsafeRawPointer(algos + CuBLASLt.algoSize * min(max(index, 0), candidateCount - 1))
        }

        /// Runs candidate `index` from now on; false (and no change) when there is no such candidate.
        @discardableResult
        func choose(_ index: Int) -> Bool {
            guard index >= 0, index < candidateCount else { return false }
            chosen = index
            return true
        }

        /// Asks the heuristic for up to `candidates` algorithms (1 is the heuristic's best alone). fp8 plans point
        /// their scale vectors at `scalePlaceholder` (any device memory) while asking: each call sets the real ones.
        init(_ lt: CuBLASLt, handle: Handle, shape s: Shape, workspaceLimit: Int, candidates: Int = 1,
             scalePlaceholder: CUdeviceptr = 0) throws
        {
            owner = lt
            shape = s
            var desc: Handle?, a: Handle?, b: Handle?, d: Handle?, pref: Handle?
            // Whatever was made before a throw is destroyed on the way out; on success ownership passes to self.
            var made = false
            defer {
                if !made {
                    if desc != nil { _ = lt.cublasLtMatmulDescDestroy(desc) }
                    for layout in [a, b, d] where layout != nil { _ = lt.cublasLtMatrixLayoutDestroy(layout) }
                }
            }
            try lt.check(lt.cublasLtMatmulDescCreate(&desc, CuBLASLt.computeF32, CuBLASLt.typeF32),
                         "cublasLtMatmulDescCreate")
            var transA: Int32 = s.transA ? CuBLASLt.opT : 0, epi = s.epilogue.rawValue, biasType = CuBLASLt.typeBF16
            try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descTransA, &transA, 4), "set TRANSA")
            try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descEpilogue, &epi, 4), "set EPILOGUE")
            if s.epilogue == .bias || s.epilogue == .geluBias {
                try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descBiasDataType, &biasType, 4),
                             "set BIAS_DATA_TYPE")
            }
            if s.fp8 {
                var mode = CuBLASLt.scaleOuterVector, fast: Int8 = s.fastAccumulation ? 1 : 0
                try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descScaleMode.a, &mode, 4),
                             "set A_SCALE_MODE")
                try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descScaleMode.b, &mode, 4),
                             "set B_SCALE_MODE")
                try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descFastAccumulation, &fast, 1),
                             "set FAST_ACCUM")
                var placeholder = scalePlaceholder
                if placeholder != 0 {
                    for attribute in [CuBLASLt.descScalePointer.a, CuBLASLt.descScalePointer.b] {
                        try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, attribute, &placeholder, 8),
                                     "set SCALE_POINTER")
                    }
                }
            }
            let inputType = s.fp8 ? CuBLASLt.typeE4M3 : CuBLASLt.typeBF16
            let (aRows, aCols) = s.transA ? (s.k, s.m) : (s.m, s.k)
            try lt.check(lt.cublasLtMatrixLayoutCreate(&a, inputType, UInt64(aRows), UInt64(aCols), Int64(s.lda)),
                         "cublasLtMatrixLayoutCreate(A)")
            try lt.check(lt.cublasLtMatrixLayoutCreate(&b, inputType, UInt64(s.k), UInt64(s.n), Int64(s.ldb)),
                         "cublasLtMatrixLayoutCreate(B)")
            try lt.check(lt.cublasLtMatrixLayoutCreate(&d, s.outputF32 ? CuBLASLt.typeF32 : CuBLASLt.typeBF16,
                                                       UInt64(s.m), UInt64(s.n), Int64(s.ldd)),
                         "cublasLtMatrixLayoutCreate(D)")
            if s.batch > 1 {
                var count = Int32(s.batch)
                for (layout, stride) in [(a, s.strideA), (b, s.strideB), (d, s.strideD)] {
                    var offset = Int64(stride)
                    try lt.check(lt.cublasLtMatrixLayoutSetAttribute(layout, CuBLASLt.layoutBatchCount, &count, 4),
                                 "set BATCH_COUNT")
                    try lt.check(lt.cublasLtMatrixLayoutSetAttribute(layout, CuBLASLt.layoutBatchStride, &offset, 8),
                                 "set STRIDED_BATCH_OFFSET")
                }
            }
            try lt.check(lt.cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate")
            defer { _ = lt.cublasLtMatmulPreferenceDestroy(pref) }
            var limit = UInt64(workspaceLimit)
            try lt.check(lt.cublasLtMatmulPreferenceSetAttribute(pref, CuBLASLt.prefMaxWorkspace, &limit, 8),
                         "set MAX_WORKSPACE_BYTES")
            if s.alignment < 256 {
                var alignment = UInt32(s.alignment)
                for attribute in CuBLASLt.prefMinAlignment {
                    try lt.check(lt.cublasLtMatmulPreferenceSetAttribute(pref, attribute, &alignment, 4),
                                 "set MIN_ALIGNMENT")
                }
            }
            let requested = min(max(candidates, 1), CuBLASLt.maxCandidates)
            let results = UnsafeMutableRawPointer.allocate(byteCount: CuBLASLt.heuristicResultSize * requested,
                                                           alignment: 16)
            defer { results.deallocate() }
            results.initializeMemory(as: UInt8.self, repeating: 0, count: CuBLASLt.heuristicResultSize * requested)
            var found: Int32 = 0
            try lt.check(lt.cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, d, d, pref, Int32(requested), results,
                                                           &found),
                         "cublasLtMatmulAlgoGetHeuristic(\(s.label))")
            let usable = CuBLASLt.usableResults(results, count: min(max(Int(found), 0), requested),
                                                workspaceLimit: workspaceLimit)
            guard let desc, let a, let b, let d, !usable.isEmpty else {
                throw TensorError.backend("cuda: cuBLASLt has no algorithm for \(s.label)")
            }
            self.desc = desc
            self.a = a
            self.b = b
            self.d = d
            algos = UnsafeMutableRawPointer.allocate(byteCount: CuBLASLt.algoSize * usable.count, alignment: 16)
            for (slot, result) in usable.enumerated() {
                let source = results + CuBLASLt.heuristicResultSize * result.index
                (algos + CuBLASLt.algoSize * slot).copyMemory(from: source, byteCount: CuBLASLt.algoSize)
            }
            workspaceSizes = usable.map(\.workspaceSize)
            wavesCounts = usable.map(\.wavesCount)
            needsChoice = usable.count > 1
            made = true
        }

        deinit {
            _ = owner.cublasLtMatmulDescDestroy(desc)
            _ = owner.cublasLtMatrixLayoutDestroy(a)
            _ = owner.cublasLtMatrixLayoutDestroy(b)
            _ = owner.cublasLtMatrixLayoutDestroy(d)
            algos.deallocate()
        }
    }

    /// One entry of a `cublasLtMatmulHeuristicResult_t` array, read field by field.
    struct HeuristicResult: Equatable {
        var index: Int
        var workspaceSize: Int
        var state: Status
        var wavesCount: Float
    }

    /// The usable entries of `count` heuristic results at `results` (state success, workspace within the limit), in
    /// the heuristic's order.
    static func usableResults(_ results: UnsafeRawPointer, count: Int, workspaceLimit: Int) -> [HeuristicResult] {
        (0..<max(count, 0)).compactMap { i in
            let base = results + heuristicResultSize * i
            let workspace = base.loadUnaligned(fromByteOffset: 64, as: UInt64.self)
            let result = HeuristicResult(index: i, workspaceSize: Int(exactly: workspace) ?? Int.max,
                                         state: base.loadUnaligned(fromByteOffset: 72, as: Int32.self),
                                         wavesCount: base.loadUnaligned(fromByteOffset: 76, as: Float.self))
            return result.state == 0 && result.workspaceSize <= workspaceLimit ? result : nil
        }
    }

    /// An algorithm's configuration as cublasLt.h numbers it (`cublasLtMatmulAlgoConfigAttributes_t`: id, tile,
    /// stages, split-K count, reduction scheme, CTA swizzling, cluster shape), e.g. "id 66 tile 20 stages 13 splitK 1
    /// reduction 0 swizzle 0 cluster 2"; empty when the library cannot say. Needs no device.
    func describe(_ algo: UnsafeRawPointer) -> String {
        guard let get = cublasLtMatmulAlgoConfigGetAttribute else { return "" }
        // (name, attribute, size in bytes): the size must be exact (CUDA 13: cluster shape is a uint16, the rest
        // 4-byte integers); an attribute this library does not know is left out.
        let fields: [(String, Int32, Int)] = [("id", 0, 4), ("tile", 1, 4), ("stages", 6, 4), ("splitK", 2, 4),
                                              ("reduction", 3, 4), ("swizzle", 4, 4), ("cluster", 8, 2)]
        return fields.compactMap { name, attribute, size -> String? in
            var value: UInt64 = 0, written = 0
            guard get(algo, attribute, &value, size, &written) == 0, written == size else { return nil }
            // Little-endian: the low `size` bytes hold the value; the id is an int32.
            let number = size == 4 ? Int(Int32(truncatingIfNeeded: value)) : Int(UInt16(truncatingIfNeeded: value))
            return "\(name) \(number)"
        }.joined(separator: " ")
    }

    /// Runs a plan: `D = op(A)·B + β·D (+ bias, epilogue)` on `stream` (β = 1 accumulates into D in place), with
    /// the plan's chosen algorithm or candidate `candidate`.
    /// `scales`: the fp8 plans' outer-vector scales of A and B (device f32 vectors).
    func matmul(_ plan: Plan, candidate: Int? = nil, handle: Handle, a: CUdeviceptr, b: CUdeviceptr,
                bias: CUdeviceptr?, d: CUdeviceptr, beta: Float = 0, scales: MatmulScales? = nil,
                workspace: CUdeviceptr, workspaceSize: Int, stream: CUhandle?) throws
    {
        if var pointer = bias {
            try check(cublasLtMatmulDescSetAttribute(plan.desc, CuBLASLt.descBiasPointer, &pointer, 8),
                      "set BIAS_POINTER")
        }
        if var scaleA = scales?.a, var scaleB = scales?.b {
            try check(cublasLtMatmulDescSetAttribute(plan.desc, CuBLASLt.descScalePointer.a, &scaleA, 8),
                      "set A_SCALE_POINTER")
            try check(cublasLtMatmulDescSetAttribute(plan.desc, CuBLASLt.descScalePointer.b, &scaleB, 8),
                      "set B_SCALE_POINTER")
        }
        var alpha: Float = 1, beta = beta
        try check(cublasLtMatmul(handle, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, d, plan.d, d, plan.d,
                                 candidate.map { plan.algo($0) } ?? plan.algo, workspace, workspaceSize, stream),
                  "cublasLtMatmul")
    }
}

/// The f32 scale vectors of an fp8 product's A and B (`CuBLASLt.Shape.fp8`).
struct MatmulScales {
    var a: CUdeviceptr
    var b: CUdeviceptr
}
