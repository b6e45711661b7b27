/// `CUdeviceptr`: a device address.
public typealias CUdeviceptr = UInt64
/// `CUcontext`, `CUstream`, `CUevent`, `CUmodule`, `CUfunction`: opaque driver handles.
public typealias CUhandle = OpaquePointer

/// Every CUDA driver entry point WideEP calls, resolved once from `libcuda.so.1` into typed C function pointers.
///
/// Versioned entry points use the `_v2` names the driver exports (e.g. `cuMemAlloc` is `cuMemAlloc_v2`).
public struct DriverAPI: @unchecked Sendable {
    public typealias Status = Int32
    public let cuInit: @convention(c) (UInt32) -> Status
    public let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    public let cuGetErrorString: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status
    public let cuGetErrorName: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status
    public let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    public let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Status
    public let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Status
    public let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Status
    public let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Status
    public let cuDeviceGetPCIBusId: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Status
    public let cuDeviceCanAccessPeer: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Status
    public let cuDeviceGetP2PAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32, Int32) -> Status
    public let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUhandle?>, Int32) -> Status
    public let cuDevicePrimaryCtxRelease: @convention(c) (Int32) -> Status
    public let cuCtxSetCurrent: @convention(c) (CUhandle?) -> Status
    public let cuCtxSynchronize: @convention(c) () -> Status
    public let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Status
    public let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> Status
    public let cuMemFree: @convention(c) (CUdeviceptr) -> Status
    public let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> Status
    public let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Status
    public let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUhandle?) -> Status
    public let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUhandle?) -> Status
    public let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUhandle?) -> Status
    public let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUhandle?) -> Status
    public let cuMemsetD16Async: @convention(c) (CUdeviceptr, UInt16, Int, CUhandle?) -> Status
    public let cuMemsetD32Async: @convention(c) (CUdeviceptr, UInt32, Int, CUhandle?) -> Status
    public let cuStreamCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>, UInt32) -> Status
    public let cuStreamDestroy: @convention(c) (CUhandle?) -> Status
    public let cuStreamSynchronize: @convention(c) (CUhandle?) -> Status
    public let cuStreamWaitEvent: @convention(c) (CUhandle?, CUhandle?, UInt32) -> Status
    public let cuEventCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>, UInt32) -> Status
    public let cuEventDestroy: @convention(c) (CUhandle?) -> Status
    public let cuEventRecord: @convention(c) (CUhandle?, CUhandle?) -> Status
    public let cuEventSynchronize: @convention(c) (CUhandle?) -> Status
    public let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, CUhandle?, CUhandle?) -> Status
    public let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<CUhandle?>, UnsafeRawPointer) -> Status
    public let cuModuleUnload: @convention(c) (CUhandle?) -> Status
    public let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<CUhandle?>, CUhandle?, UnsafePointer<CChar>) -> Status
    public let cuFuncSetAttribute: @convention(c) (CUhandle?, Int32, Int32) -> Status
    public let cuLaunchKernel: @convention(c) (
        CUhandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Status
    /// Page-locks an existing host range (`cuMemHostRegister_v2`): pointer, bytes, `CU_MEMHOSTREGISTER_*` flags.
    public let cuMemHostRegister: @convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Status
    /// Undoes `cuMemHostRegister` for the range starting at the pointer.
    public let cuMemHostUnregister: @convention(c) (UnsafeMutableRawPointer?) -> Status

    init(_ lib: SharedLibrary) throws {
        cuInit = try lib.function("cuInit")
        cuDriverGetVersion = try lib.function("cuDriverGetVersion")
        cuGetErrorString = try lib.function("cuGetErrorString")
        cuGetErrorName = try lib.function("cuGetErrorName")
        cuDeviceGetCount = try lib.function("cuDeviceGetCount")
        cuDeviceGet = try lib.function("cuDeviceGet")
        cuDeviceGetName = try lib.function("cuDeviceGetName")
        cuDeviceGetAttribute = try lib.function("cuDeviceGetAttribute")
        cuDeviceTotalMem = try lib.function("cuDeviceTotalMem_v2")
        cuDeviceGetPCIBusId = try lib.function("cuDeviceGetPCIBusId")
        cuDeviceCanAccessPeer = try lib.function("cuDeviceCanAccessPeer")
        cuDeviceGetP2PAttribute = try lib.function("cuDeviceGetP2PAttribute")
        cuDevicePrimaryCtxRetain = try lib.function("cuDevicePrimaryCtxRetain")
        cuDevicePrimaryCtxRelease = try lib.function("cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease")
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent")
        cuCtxSynchronize = try lib.function("cuCtxSynchronize")
        cuMemGetInfo = try lib.function("cuMemGetInfo_v2")
        cuMemAlloc = try lib.function("cuMemAlloc_v2")
        cuMemFree = try lib.function("cuMemFree_v2")
        cuMemHostAlloc = try lib.function("cuMemHostAlloc")
        cuMemFreeHost = try lib.function("cuMemFreeHost")
        cuMemcpyHtoDAsync = try lib.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try lib.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try lib.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try lib.function("cuMemsetD8Async")
        cuMemsetD16Async = try lib.function("cuMemsetD16Async")
        cuMemsetD32Async = try lib.function("cuMemsetD32Async")
        cuStreamCreate = try lib.function("cuStreamCreate")
        cuStreamDestroy = try lib.function("cuStreamDestroy_v2")
        cuStreamSynchronize = try lib.function("cuStreamSynchronize")
        cuStreamWaitEvent = try lib.function("cuStreamWaitEvent")
        cuEventCreate = try lib.function("cuEventCreate")
        cuEventDestroy = try lib.function("cuEventDestroy_v2")
        cuEventRecord = try lib.function("cuEventRecord")
        cuEventSynchronize = try lib.function("cuEventSynchronize")
        cuEventElapsedTime = try lib.function("cuEventElapsedTime_v2", "cuEventElapsedTime")
        cuModuleLoadData = try lib.function("cuModuleLoadData")
        cuModuleUnload = try lib.function("cuModuleUnload")
        cuModuleGetFunction = try lib.function("cuModuleGetFunction")
        cuFuncSetAttribute = try lib.function("cuFuncSetAttribute")
        cuLaunchKernel = try lib.function("cuLaunchKernel")
        cuMemHostRegister = try lib.function("cuMemHostRegister_v2", "cuMemHostRegister")
        cuMemHostUnregister = try lib.function("cuMemHostUnregister")
    }

    /// "CUDA_ERROR_OUT_OF_MEMORY: out of memory" for a status code.
    func message(_ code: Int32) -> String {
        var name: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorName(code, &name)
        _ = cuGetErrorString(code, &text)
        let n = name.map { String(cString: $0) } ?? "CUDA error \(code)"
        let t = text.map { String(cString: $0) } ?? "unknown"
        return "\(n): \(t)"
    }

    /// Throws `CUDAError.driver` with the driver's own message when `code` is not `CUDA_SUCCESS`.
    @inline(__always)
    public func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        if code != 0 { throw CUDAError.driver(call: call(), code: code, message: message(code)) }
    }
}

/// Driver attribute and flag constants (values from `cuda.h`, which is not needed at build time).
public enum CUAttribute {
    /// `CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT`.
    public static let multiprocessorCount: Int32 = 16
    /// `CU_DEVICE_ATTRIBUTE_CLOCK_RATE` (kHz).
    public static let clockRateKHz: Int32 = 13
    /// `CU_DEVICE_ATTRIBUTE_PCI_BUS_ID`.
    public static let pciBusID: Int32 = 33
    /// `CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE` (kHz).
    public static let memoryClockRateKHz: Int32 = 36
    /// `CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH` (bits).
    public static let globalMemoryBusWidth: Int32 = 37
    /// `CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE` (bytes).
    public static let l2CacheSize: Int32 = 38
    /// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR`.
    public static let computeCapabilityMajor: Int32 = 75
    /// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR`.
    public static let computeCapabilityMinor: Int32 = 76
    /// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN` (bytes).
    public static let maxSharedMemoryPerBlockOptin: Int32 = 97
    /// `CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK`.
    public static let p2pPerformanceRank: Int32 = 1
    /// `CU_DEVICE_P2P_ATTRIBUTE_ACCESS_SUPPORTED`.
    public static let p2pAccessSupported: Int32 = 2
    /// `CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED`.
    public static let p2pNativeAtomicSupported: Int32 = 3
    /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`.
    public static let funcMaxDynamicSharedBytes: Int32 = 8
    /// `CU_STREAM_NON_BLOCKING`.
    public static let streamNonBlocking: UInt32 = 1
    /// `CU_EVENT_DISABLE_TIMING`.
    public static let eventDisableTiming: UInt32 = 2
    /// `CU_EVENT_BLOCKING_SYNC`: `cuEventSynchronize` blocks the thread instead of spinning.
    public static let eventBlockingSync: UInt32 = 1
    /// `CU_MEMHOSTALLOC_PORTABLE`.
    public static let hostAllocPortable: UInt32 = 1
    /// `CU_MEMHOSTREGISTER_PORTABLE`: the registration counts for every context.
    public static let hostRegisterPortable: UInt32 = 1
}
