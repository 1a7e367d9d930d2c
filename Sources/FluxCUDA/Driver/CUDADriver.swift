import FluxCore

/// CUDA driver API handles (`cuda.h`): device pointers are 64-bit integers, everything else is an opaque pointer.
typealias CUdeviceptr = UInt64
typealias CUhandle = OpaquePointer
typealias CUresult = Int32

/// The CUDA driver API (`libcuda.so.1`), loaded with `dlopen`. Every call returns a `CUresult`; `check` turns a
/// failure into `TensorError.backend("cuda: <call>: <error string>")` (or `.outOfMemory`).
///
/// Entry points are looked up by their versioned names (`cuMemAlloc_v2`, ...), which is what `cuda.h`'s macros
/// expand to for CUDA 12/13.
final class CUDADriver: @unchecked Sendable {
    typealias Status = CUresult
    typealias OutHandle = UnsafeMutablePointer<CUhandle?>

    let library: DynamicLibrary

    let cuInit: @convention(c) (UInt32) -> Status
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Status
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Status
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Status
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Status
    let cuDevicePrimaryCtxRetain: @convention(c) (OutHandle, Int32) -> Status
    let cuCtxSetCurrent: @convention(c) (CUhandle?) -> Status
    let cuCtxSynchronize: @convention(c) () -> Status
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> Status
    let cuMemFree: @convention(c) (CUdeviceptr) -> Status
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Status
    /// Page-locked host memory (`flags` as `CU_MEMHOSTALLOC_*`; 0 is what `cuMemAllocHost` gives).
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> Status
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Status
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUhandle?) -> Status
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUhandle?) -> Status
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUhandle?) -> Status
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUhandle?) -> Status
    let cuMemsetD16Async: @convention(c) (CUdeviceptr, UInt16, Int, CUhandle?) -> Status
    let cuModuleLoadData: @convention(c) (OutHandle, UnsafeRawPointer) -> Status
    let cuModuleGetFunction: @convention(c) (OutHandle, CUhandle?, UnsafePointer<CChar>) -> Status
    let cuFuncSetAttribute: @convention(c) (CUhandle?, Int32, Int32) -> Status
    let cuLaunchKernel: @convention(c) (
        CUhandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Status
    let cuStreamCreate: @convention(c) (OutHandle, UInt32) -> Status
    let cuStreamSynchronize: @convention(c) (CUhandle?) -> Status
    let cuEventCreate: @convention(c) (OutHandle, UInt32) -> Status
    let cuEventRecord: @convention(c) (CUhandle?, CUhandle?) -> Status
    let cuEventSynchronize: @convention(c) (CUhandle?) -> Status
    let cuEventDestroy: @convention(c) (CUhandle?) -> Status
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, CUhandle?, CUhandle?) -> Status
    let cuGetErrorString: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status
    let cuGetErrorName: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status

    /// Device attributes used here (`CUdevice_attribute`).
    enum Attribute: Int32 {
        case maxThreadsPerBlock = 1
        case multiprocessorCount = 16
        case computeCapabilityMajor = 75
        case computeCapabilityMinor = 76
        case maxSharedMemoryPerBlockOptin = 97
    }

    static let errorOutOfMemory: Status = 2
    /// `CU_EVENT_DISABLE_TIMING`: an event only waited on, never timed (cheaper to record).
    static let eventDisableTiming: UInt32 = 2
    /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`.
    static let functionMaxDynamicSharedBytes: Int32 = 8

    init(search: LibrarySearch = LibrarySearch()) throws {
        let lib = try DynamicLibrary.open(["libcuda.so.1", "libcuda.so"], override: search.paths.driver,
                                          what: "no NVIDIA driver", search: search)
        library = lib
        cuInit = try lib.function("cuInit")
        cuDriverGetVersion = try lib.function("cuDriverGetVersion")
        cuDeviceGetCount = try lib.function("cuDeviceGetCount")
        cuDeviceGet = try lib.function("cuDeviceGet")
        cuDeviceGetName = try lib.function("cuDeviceGetName")
        cuDeviceGetAttribute = try lib.function("cuDeviceGetAttribute")
        cuDeviceTotalMem = try lib.function("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try lib.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent")
        cuCtxSynchronize = try lib.function("cuCtxSynchronize")
        cuMemAlloc = try lib.function("cuMemAlloc_v2")
        cuMemFree = try lib.function("cuMemFree_v2")
        cuMemGetInfo = try lib.function("cuMemGetInfo_v2")
        cuMemHostAlloc = try lib.function("cuMemHostAlloc")
        cuMemFreeHost = try lib.function("cuMemFreeHost")
        cuMemcpyHtoDAsync = try lib.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try lib.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try lib.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try lib.function("cuMemsetD8Async")
        cuMemsetD16Async = try lib.function("cuMemsetD16Async")
        cuModuleLoadData = try lib.function("cuModuleLoadData")
        cuModuleGetFunction = try lib.function("cuModuleGetFunction")
        cuFuncSetAttribute = try lib.function("cuFuncSetAttribute")
        cuLaunchKernel = try lib.function("cuLaunchKernel")
        cuStreamCreate = try lib.function("cuStreamCreate")
        cuStreamSynchronize = try lib.function("cuStreamSynchronize")
        cuEventCreate = try lib.function("cuEventCreate")
        cuEventRecord = try lib.function("cuEventRecord")
        cuEventSynchronize = try lib.function("cuEventSynchronize")
        cuEventDestroy = try lib.function("cuEventDestroy_v2", "cuEventDestroy")
        cuEventElapsedTime = try lib.function("cuEventElapsedTime_v2", "cuEventElapsedTime")
        cuGetErrorString = try lib.function("cuGetErrorString")
        cuGetErrorName = try lib.function("cuGetErrorName")
    }

    /// The driver's words for a status, e.g. `CUDA_ERROR_INVALID_VALUE (invalid argument)`.
    func describe(_ status: Status) -> String {
        var name: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorName(status, &name)
        _ = cuGetErrorString(status, &text)
        let n = name.map { String(cString: $0) } ?? "CUresult \(status)"
        return text.map { "\(n) (\(String(cString: $0)))" } ?? n
    }

    /// Throws `TensorError.backend("cuda: <call>: <error>")` unless `status` is success.
    func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        if status != 0 { throw TensorError.backend("cuda: \(call()): \(describe(status))") }
    }

    func attribute(_ attribute: Attribute, device: Int32) throws -> Int {
        var value: Int32 = 0
        try check(cuDeviceGetAttribute(&value, attribute.rawValue, device), "cuDeviceGetAttribute(\(attribute))")
        return Int(value)
    }

    /// Driver version as (major, minor), e.g. (13, 0).
    func version() throws -> (Int, Int) {
        var v: Int32 = 0
        try check(cuDriverGetVersion(&v), "cuDriverGetVersion")
        return (Int(v) / 1000, Int(v) % 1000 / 10)
    }
}

/// One argument of a kernel launch. The driver copies each from its own slot, as many bytes as the kernel's
/// parameter takes (pointers and `long long` 8, `int` and `float` 4, a struct passed by value its size).
enum KernelArgument {
    case pointer(CUdeviceptr)
    case int32(Int32)
    case int64(Int64)
    case float(Float)
    /// A struct passed by value: its bytes, laid out as the kernel declares it.
    case bytes([UInt8])

    static func int(_ value: Int) -> KernelArgument { .int32(Int32(truncatingIfNeeded: value)) }
    static func long(_ value: Int) -> KernelArgument { .int64(Int64(value)) }

    var size: Int {
        if case let .bytes(b) = self { return (b.count + 7) / 8 * 8 }
        return 8
    }
}

extension CUDADriver {
    /// Launches `function` on `stream` with the given grid, block, dynamic shared memory and arguments.
    func launch(_ function: CUhandle, name: String, grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0,
                stream: CUhandle?, _ arguments: [KernelArgument]) throws
    {
        guard grid.0 > 0, grid.1 > 0, grid.2 > 0, grid.1 <= 65_535, grid.2 <= 65_535, grid.0 <= Int(Int32.max) else {
            throw TensorError.backend("cuda: launch \(name): grid \(grid) out of range")
        }
        let total = arguments.reduce(0) { $0 + $1.size }
        let slots = UnsafeMutableRawPointer.allocate(byteCount: max(8, total), alignment: 16)
        defer { slots.deallocate() }
        var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: arguments.count)
        var offset = 0
        for (i, argument) in arguments.enumerated() {
            let slot = slots + offset
            switch argument {
            case let .pointer(p): slot.storeBytes(of: p, as: UInt64.self)
            case let .int32(v): slot.storeBytes(of: v, as: Int32.self)
            case let .int64(v): slot.storeBytes(of: v, as: Int64.self)
            case let .float(v): slot.storeBytes(of: v, as: Float.self)
            case let .bytes(b): b.withUnsafeBytes { if let base = $0.baseAddress { slot.copyMemory(from: base, byteCount: b.count) } }
            }
            pointers[i] = slot
            offset += argument.size
        }
        let status = pointers.withUnsafeMutableBufferPointer { args in
            cuLaunchKernel(function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block.0), UInt32(block.1),
                           UInt32(block.2), UInt32(sharedBytes), stream, args.baseAddress, nil)
        }
        try check(status, "cuLaunchKernel(\(name))")
    }
}
