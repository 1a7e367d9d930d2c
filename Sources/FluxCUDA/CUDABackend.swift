import FluxCore
import Foundation

/// The GPU backend: every `Backend` op on an NVIDIA GPU, tensors in bf16 device memory, f32 math in the kernels.
///
/// Nothing links against CUDA: the driver, NVRTC and cuBLASLt are opened with `dlopen` when a backend is made, so the
/// same binary runs on machines without a GPU (where `init` throws a one-line error). All work goes to one stream in
/// order; only `download` (and `synchronize`) wait for the device. Calls are serialised by a lock, so the backend may
/// be shared between threads.
public final class CUDABackend: Backend, @unchecked Sendable {
    /// How `linear` multiplies.
    public enum MatmulPath: String, Sendable {
        /// cuBLASLt when it loads, else the fallback kernel (said in `matmulDescription`).
        case automatic
        /// cuBLASLt or an error.
        case cublasLt
        /// The simple tiled kernel of `gemm.cu` (tests and machines without cuBLASLt).
        case kernel
    }

    /// How `attention` runs.
    public enum AttentionPath: String, Sendable {
        /// cuDNN's fused flash attention where it applies (no bias, not causal, a head dim cuDNN takes), else the
        /// kernel of `attention.cu`.
        case automatic
        /// Always the kernel of `attention.cu`.
        case kernel
    }

    public let name: String
    /// The GPU's marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    public let deviceName: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessorCount: Int
    public let options: Options
    /// Where this backend opens cuBLASLt and cuDNN (`options.libraries`, then the standard folders).
    let librarySearch: LibrarySearch

    let driver: CUDADriver
    let context: CUhandle
    let stream: CUhandle
    let allocator: DeviceAllocator
    let kernels: KernelCache
    let matmul: MatmulEngine?
    /// Set (under the lock) once the user has been told that fp8 products run dequantized on this GPU.
    var toldFP8Fallback = false
    let sdpa: SDPAEngine?
    let profiler: OpProfiler
    /// The pinned buffers uploads go through (`StagedUpload.swift`), made on the first upload.
    lazy var staging = PinnedStaging(driver: driver, context: context)
    private let lock = NSRecursiveLock()

    /// Opens device `options.device`: loads the libraries, retains the primary context, creates the stream.
    /// Throws `TensorError.backend` with one line (e.g. "libcuda.so.1 not found (no NVIDIA driver)").
    public init(options: Options = Options()) throws {
        self.options = options
        librarySearch = LibrarySearch(options.libraries)
        let driver = try CUDABackend.loadDriver(librarySearch)
        self.driver = driver
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard options.device >= 0, options.device < Int(count) else {
            throw TensorError.backend("cuda:\(options.device): no such device (\(count) found)")
        }
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(options.device)), "cuDeviceGet")
        var context: CUhandle?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else { throw TensorError.backend("cuda: cuDevicePrimaryCtxRetain returned no context") }
        self.context = context
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")

        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 255, device), "cuDeviceGetName")
        deviceName = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        computeCapability = (try driver.attribute(.computeCapabilityMajor, device: device),
                             try driver.attribute(.computeCapabilityMinor, device: device))
        multiprocessorCount = try driver.attribute(.multiprocessorCount, device: device)
        name = "cuda:\(options.device)"

        var stream: CUhandle?
        try driver.check(driver.cuStreamCreate(&stream, 1), "cuStreamCreate")  // CU_STREAM_NON_BLOCKING
        guard let stream else { throw TensorError.backend("cuda: cuStreamCreate returned no stream") }
        self.stream = stream
        allocator = DeviceAllocator(driver: driver, context: context, backendName: "cuda:\(options.device)")
        profiler = OpProfiler(driver: driver)
        kernels = KernelCache(driver: driver, computeCapability: computeCapability,
                              nvrtc: try CUDABackend.loadNVRTC(librarySearch),
                              directory: options.kernelCacheDirectory.map { URL(fileURLWithPath: $0) })
        let (search, allocator, profiler) = (librarySearch, allocator, profiler)
        func makeMatmul() throws -> MatmulEngine {
            try MatmulEngine(allocator: allocator, profiler: profiler, tuning: options.gemmTuning,
                             fp8FastAccumulation: options.fp8FastAccumulation, search: search)
        }
        switch options.matmul {
        case .kernel:
            matmul = nil
        case .cublasLt:
            matmul = try makeMatmul()
        case .automatic:
            matmul = try? makeMatmul()
        }
        sdpa = options.attention == .automatic ? try? SDPAEngine(stream: stream, search: search) : nil
    }

    /// Where `linear` runs, for reports: "cuBLASLt <version>" or "fallback kernel (gemm.cu)".
    public var matmulDescription: String {
        matmul.map { "cuBLASLt \($0.blas.version) (\($0.blas.library.path))" } ?? "fallback kernel (gemm.cu)"
    }

    /// Where `attention` runs, for reports.
    public var attentionDescription: String {
        let kernel = "attention.cu"
        return sdpa.map { "cuDNN \($0.dnn.version) SDPA (no bias, not causal), else \(kernel)" } ?? kernel
    }

    /// NVRTC's version and the architecture kernels are compiled for, e.g. "NVRTC 13.0, sm_90a".
    public var compilerDescription: String {
        "NVRTC \(kernels.nvrtcVersion.major).\(kernels.nvrtcVersion.minor), \(kernels.architecture)"
    }

    /// Free and total device memory in bytes.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        try locked {
            var free = 0, total = 0
            try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
            return (free, total)
        }
    }

    /// Waits until every queued op has finished (for timing; ops never need it).
    public func synchronize() throws {
        try locked { try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize") }
    }

    /// Compiles or loads every kernel module now (`fluxserve warmup`), and reports what each took.
    public func warmKernels() throws -> [(module: String, source: String, milliseconds: Double, cubinBytes: Int)] {
        try locked { try kernels.loadAll().map { ($0.module, $0.source, $0.milliseconds, $0.cubinBytes) } }
    }

    // MARK: Library loading, shared by every backend of the process

    /// The driver and NVRTC are opened once per process for each `LibrarySearch` (in practice one: the command
    /// line's), since every backend of the process shares them; the outcome, failure included, is kept.
    private static let loaded = LoadedLibraries()

    private final class LoadedLibraries: @unchecked Sendable {
        private let lock = NSLock()
        private var drivers: [LibrarySearch: Result<CUDADriver, Error>] = [:]
        private var compilers: [LibrarySearch: Result<NVRTC, Error>] = [:]

        func driver(_ search: LibrarySearch) throws -> CUDADriver {
            lock.lock()
            defer { lock.unlock() }
            if let result = drivers[search] { return try result.get() }
            let result = Result {
                let driver = try CUDADriver(search: search)
                try driver.check(driver.cuInit(0), "cuInit")
                return driver
            }
            drivers[search] = result
            return try result.get()
        }

        func nvrtc(_ search: LibrarySearch) throws -> NVRTC {
            lock.lock()
            defer { lock.unlock() }
            if let result = compilers[search] { return try result.get() }
            let result = Result { try NVRTC(search: search) }
            compilers[search] = result
            return try result.get()
        }
    }

    static func loadDriver(_ search: LibrarySearch) throws -> CUDADriver { try loaded.driver(search) }
    static func loadNVRTC(_ search: LibrarySearch) throws -> NVRTC { try loaded.nvrtc(search) }

    /// nil when a CUDA device can be used with these library paths, else why not (one line), without making a
    /// backend.
    public static func unavailableReason(libraries: LibraryPaths = LibraryPaths()) -> String? {
        do {
            let driver = try loadDriver(LibrarySearch(libraries))
            var count: Int32 = 0
            try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
            return count > 0 ? nil : "no CUDA device found"
        } catch {
            return "\(error)"
        }
    }

    // MARK: Helpers for the ops

    /// Runs `body` holding the lock with this backend's context current on the calling thread.
    func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        return try body()
    }

    /// The device pointer of a tensor this backend made, of `dtype` (bf16 unless told), or a typed error naming the op.
    func pointer(_ t: Tensor, _ op: String, dtype: DType = .bf16) throws -> CUdeviceptr {
        guard let storage = t.storage as? CUDAStorage, storage.allocator === allocator else {
            throw TensorError.foreignStorage(op: op, backend: name)
        }
        guard t.dtype == dtype else { throw TensorError.unsupportedDType(op: op, dtype: t.dtype) }
        let size = dtype.byteSize
        guard t.offset >= 0, storage.byteCount >= (t.offset + t.count) * size else {
            throw TensorError.backend("\(op): tensor of shape \(t.shape) at \(t.offset) over \(storage.byteCount) bytes")
        }
        return storage.pointer + CUdeviceptr(t.offset * size)
    }

    func optionalPointer(_ t: Tensor?, _ op: String) throws -> CUdeviceptr { try t.map { try pointer($0, op) } ?? 0 }

    /// A fresh tensor of `dtype`, bf16 unless told (a bf16 one NaN-filled when `poisonOutputs` is on).
    func empty(_ shape: [Int], _ op: String, dtype: DType = .bf16) throws -> (Tensor, CUdeviceptr) {
        guard let count = elementCount(shape) else {
            throw TensorError.shapeMismatch(op: op, operand: "result", shape: shape, expected: "a valid shape")
        }
        let storage = try allocator.allocate(count * dtype.byteSize)
        if options.poisonOutputs && count > 0 && dtype == .bf16 {
            try driver.check(driver.cuMemsetD16Async(storage.pointer, 0x7FC1, count, stream), "cuMemsetD16Async")
        }
        return (Tensor(shape: shape, dtype: dtype, storage: storage), storage.pointer)
    }

    /// Launches `module.kernel` with an explicit geometry on the backend's stream.
    func launch(_ module: String, _ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int),
                sharedBytes: Int = 0, _ arguments: [KernelArgument]) throws
    {
        let function = try kernels.function(module, kernel)
        if sharedBytes > 48 * 1024 {
            try kernels.allowSharedMemory(function, id: module + "." + kernel, bytes: sharedBytes)
        }
        try profiler.measure(kernel, stream: stream) {
            try driver.launch(function, name: kernel, grid: grid, block: block, sharedBytes: sharedBytes,
                              stream: stream, arguments)
        }
    }

    /// Launches a grid-stride kernel over `count` items: 256 threads a block, at most 32 blocks per SM.
    func launchElements(_ module: String, _ kernel: String, count: Int, _ arguments: [KernelArgument]) throws {
        guard count > 0 else { return }
        let blocks = min((count + 255) / 256, max(1, multiprocessorCount) * 32)
        try launch(module, kernel, grid: (blocks, 1, 1), block: (256, 1, 1), arguments)
    }
}

// MARK: Memory

extension CUDABackend {
    /// Converts to bf16 (bf16 input is copied as is) and queues the copy to the device through pinned staging
    /// buffers (`PinnedStaging`), or from pageable memory when no pinned memory can be had. The host buffer may go as
    /// soon as the call returns; ops queued later read the uploaded values (one stream).
    public func upload(_ host: HostTensor) throws -> Tensor {
        guard let count = elementCount(host.shape), count * host.dtype.byteSize == host.bytes.count else {
            throw TensorError.shapeMismatch(op: "upload", operand: "host", shape: host.shape,
                                            expected: "\(host.bytes.count / max(host.dtype.byteSize, 1)) elements")
        }
        return try upload(pieces: [host.bytes], shape: host.shape, dtype: host.dtype)
    }

    /// Uploads the concatenation of `pieces` (byte spans of `dtype` elements, `elementCount(shape)` in all, each
    /// a whole number of elements) as one tensor of `shape`, without joining them on the host first.
    func upload(pieces: [UnsafeRawBufferPointer], shape: [Int], dtype: DType) throws -> Tensor {
        let total = pieces.reduce(0) { $0 + $1.count }
        guard let count = elementCount(shape), count * dtype.byteSize == total,
              pieces.allSatisfy({ $0.count % dtype.byteSize == 0 }) else {
            throw TensorError.shapeMismatch(op: "upload", operand: "host", shape: shape,
                                            expected: "\(total / max(dtype.byteSize, 1)) elements in whole pieces")
        }
        return try locked {
            let (tensor, pointer) = try empty(shape, "upload")
            guard count > 0 else { return tensor }
            if try staging.upload(pieces, dtype: dtype, count: count, to: pointer, stream: stream) { return tensor }
            // Pageable: the driver stages the copy itself before the call returns.
            let bits = [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
                writeBF16(pieces, dtype: dtype, elements: 0..<count, to: UnsafeMutableRawPointer(buffer.baseAddress!))
                initialized = count
            }
            try bits.withUnsafeBytes { raw in
                try driver.check(driver.cuMemcpyHtoDAsync(pointer, raw.baseAddress, raw.count, stream),
                                 "cuMemcpyHtoDAsync(\(raw.count) bytes)")
            }
            return tensor
        }
    }

    /// How uploads reach the device, for reports: "pinned staging, 4 of 4 × 64 MiB allocated, 33.70 GB staged", or
    /// "pageable (pinned staging failed: ...)".
    public var uploadDescription: String {
        (try? locked { staging.description }) ?? "unknown"
    }

    /// Why uploads take the pageable path (no pinned memory could be allocated), or nil when they are staged.
    public var pinnedUploadFailure: String? {
        (try? locked { staging.unavailableReason }) ?? nil
    }

    /// Waits for the stream, copies the bf16 values back and widens them to f32.
    /// bf16 tensors, and the f32 and f8 e4m3 ones of fp8 weights (`quantizeFP8`), as f32.
    public func download(_ tensor: Tensor) throws -> HostTensor {
        try locked {
            let dtype = tensor.dtype == .f32 || tensor.dtype == .f8e4m3 ? tensor.dtype : .bf16
            let source = try pointer(tensor, "download", dtype: dtype)
            let count = tensor.count
            var bytes = [UInt8](repeating: 0, count: count * dtype.byteSize)
            if count > 0 {
                try bytes.withUnsafeMutableBytes { raw in
                    try driver.check(driver.cuMemcpyDtoHAsync(raw.baseAddress, source, raw.count, stream),
                                     "cuMemcpyDtoHAsync(\(raw.count) bytes)")
                }
            }
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            var values = [Float](repeating: 0, count: count)
            bytes.withUnsafeBytes { raw in
                values.withUnsafeMutableBufferPointer { convertToFloat(raw, dtype: dtype, into: $0) }
            }
            return HostTensor(values, shape: tensor.shape)
        }
    }
}
