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
    private static let opT: Int32 = 1                  // CUBLAS_OP_T
    private static let descTransA: Int32 = 3           // CUBLASLT_MATMUL_DESC_TRANSA
    private static let descEpilogue: Int32 = 7         // CUBLASLT_MATMUL_DESC_EPILOGUE
    private static let descBiasPointer: Int32 = 8      // CUBLASLT_MATMUL_DESC_BIAS_POINTER
    private static let descBiasDataType: Int32 = 26    // CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE
    private static let prefMaxWorkspace: Int32 = 1     // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
    /// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32, default 256).
    private static let prefMinAlignment: [Int32] = [5, 6, 7, 8]
    private static let layoutBatchCount: Int32 = 5     // CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT (int32)
    private static let layoutBatchStride: Int32 = 6    // CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET (int64, elements)
    /// sizeof(cublasLtMatmulHeuristicResult_t): algo (64 bytes), workspaceSize, state, wavesCount, reserved[4].
    private static let heuristicResultSize = 96

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
    private let cublasLtMatmul: @convention(c) (
        Handle?, Handle?, UnsafeRawPointer, CUdeviceptr, Handle?, CUdeviceptr, Handle?, UnsafeRawPointer, CUdeviceptr,
        Handle?, CUdeviceptr, Handle?, UnsafeRawPointer?, CUdeviceptr, Int, CUhandle?
    ) -> Status

    init(search: LibrarySearch = .fromEnvironment()) throws {
        let lib = try DynamicLibrary.open(["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
                                          variable: "FLUXSERVE_LIBCUBLASLT",
                                          what: "cuBLASLt; set FLUXSERVE_CUDA_LIB_DIR", search: search)
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
    }

    /// Descriptors and the chosen algorithm for one `Shape`, made once and reused.
    final class Plan: @unchecked Sendable {
        let desc: Handle
        let a: Handle, b: Handle, d: Handle
        let algo: UnsafeMutableRawPointer   // cublasLtMatmulAlgo_t, 64 bytes
        let workspaceSize: Int
        let shape: Shape
        private let owner: CuBLASLt

        init(_ lt: CuBLASLt, handle: Handle, shape s: Shape, workspaceLimit: Int) throws {
            owner = lt
            shape = s
            var desc: Handle?, a: Handle?, b: Handle?, d: Handle?, pref: Handle?
            try lt.check(lt.cublasLtMatmulDescCreate(&desc, CuBLASLt.computeF32, CuBLASLt.typeF32),
                         "cublasLtMatmulDescCreate")
            var transA: Int32 = s.transA ? CuBLASLt.opT : 0, epi = s.epilogue.rawValue, biasType = CuBLASLt.typeBF16
            try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descTransA, &transA, 4), "set TRANSA")
            try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descEpilogue, &epi, 4), "set EPILOGUE")
            if s.epilogue == .bias || s.epilogue == .geluBias {
                try lt.check(lt.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descBiasDataType, &biasType, 4),
                             "set BIAS_DATA_TYPE")
            }
            let (aRows, aCols) = s.transA ? (s.k, s.m) : (s.m, s.k)
            try lt.check(lt.cublasLtMatrixLayoutCreate(&a, CuBLASLt.typeBF16, UInt64(aRows), UInt64(aCols),
                                                       Int64(s.lda)), "cublasLtMatrixLayoutCreate(A)")
            try lt.check(lt.cublasLtMatrixLayoutCreate(&b, CuBLASLt.typeBF16, UInt64(s.k), UInt64(s.n), Int64(s.ldb)),
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
            let result = UnsafeMutableRawPointer.allocate(byteCount: CuBLASLt.heuristicResultSize, alignment: 16)
            defer { result.deallocate() }
            var found: Int32 = 0
            try lt.check(lt.cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, d, d, pref, 1, result, &found),
                         "cublasLtMatmulAlgoGetHeuristic(\(s.m)x\(s.n)x\(s.k))")
            guard let desc, let a, let b, let d, found > 0 else {
                throw TensorError.backend("cuda: cuBLASLt has no algorithm for \(s.m)x\(s.n)x\(s.k) bf16 (\(s.epilogue))")
            }
            self.desc = desc
            self.a = a
            self.b = b
            self.d = d
            algo = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
            algo.copyMemory(from: result, byteCount: 64)
            workspaceSize = result.load(fromByteOffset: 64, as: Int.self)
        }

        deinit {
            _ = owner.cublasLtMatmulDescDestroy(desc)
            _ = owner.cublasLtMatrixLayoutDestroy(a)
            _ = owner.cublasLtMatrixLayoutDestroy(b)
            _ = owner.cublasLtMatrixLayoutDestroy(d)
            algo.deallocate()
        }
    }

    /// Runs a plan: `D = op(A)·B + β·D (+ bias, epilogue)` on `stream` (β = 1 accumulates into D in place).
    func matmul(_ plan: Plan, handle: Handle, a: CUdeviceptr, b: CUdeviceptr, bias: CUdeviceptr?, d: CUdeviceptr,
                beta: Float = 0, workspace: CUdeviceptr, workspaceSize: Int, stream: CUhandle?) throws
    {
        if var pointer = bias {
            try check(cublasLtMatmulDescSetAttribute(plan.desc, CuBLASLt.descBiasPointer, &pointer, 8),
                      "set BIAS_POINTER")
        }
        var alpha: Float = 1, beta = beta
        try check(cublasLtMatmul(handle, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, d, plan.d, d, plan.d,
                                 plan.algo, workspace, workspaceSize, stream), "cublasLtMatmul")
    }
}
