import CUDADriver
import Foundation

/// One GPU as WideEP uses it: its primary context, a compute stream, a cuBLAS handle and the NVRTC kernel cache.
///
/// Not thread-safe: one `GPU` is driven by one thread at a time (one process per GPU, DESIGN.md §6).
public final class GPU: @unchecked Sendable {
    /// The retained primary context.
    public let context: CUDAContext
    /// The stream all kernels and GEMMs of this GPU are issued on.
    public let stream: CUDAStream
    /// Device name, e.g. "NVIDIA H200".
    public let name: String
    /// Compute capability, e.g. (9, 0).
    public let computeCapability: (major: Int, minor: Int)
    /// Streaming multiprocessors.
    public let multiprocessors: Int
    /// Total device memory in bytes.
    public let totalMemory: Int
    /// NVRTC architecture flag for this device, e.g. "sm_90".
    public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }
    /// Kernels compiled for this device, keyed by (source, defines, architecture).
    public let kernels: KernelCache
    lazy var cublasHandle: Result<CUBLASHandle, Error> = Result { try CUBLASHandle(stream: stream) }

    /// Opens device `ordinal` (0 by default).
    public init(ordinal: Int = 0) throws {
        context = try CUDAContext(ordinal: ordinal)
        stream = try CUDAStream(context: context)
        var buf = [CChar](repeating: 0, count: 256)
        try context.api.check(context.api.cuDeviceGetName(&buf, 256, context.device), "cuDeviceGetName")
        name = String(cString: buf)
        computeCapability = (
            try context.attribute(CUAttribute.computeCapabilityMajor),
            try context.attribute(CUAttribute.computeCapabilityMinor)
        )
        multiprocessors = try context.attribute(CUAttribute.multiprocessorCount)
        var total = 0
        try context.api.check(context.api.cuDeviceTotalMem(&total, context.device), "cuDeviceTotalMem")
        totalMemory = total
        kernels = KernelCache(context: context, architecture: "sm_\(computeCapability.major)\(computeCapability.minor)")
    }

    /// The cuBLAS handle on `stream` (created on first use).
    public func cublas() throws -> CUBLASHandle { try cublasHandle.get() }

    /// Waits for everything issued on `stream`.
    public func synchronize() throws { try stream.synchronize() }

    /// Free and total device memory in bytes.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        var f = 0, t = 0
        try context.api.check(context.api.cuMemGetInfo(&f, &t), "cuMemGetInfo")
        return (f, t)
    }

    /// Times `body` (issued on `stream`) with events: `warmup` untimed runs, then the median of `repeats`, in ms.
    public func time(warmup: Int = 2, repeats: Int = 10, _ body: () throws -> Void) throws -> Double {
        for _ in 0..<warmup { try body() }
        try synchronize()
        let start = try CUDAEvent(context: context), stop = try CUDAEvent(context: context)
        var samples: [Double] = []
        for _ in 0..<max(1, repeats) {
            try start.record(on: stream)
            try body()
            try stop.record(on: stream)
            try stop.synchronize()
            samples.append(try stop.elapsed(since: start))
        }
        samples.sort()
        return samples[samples.count / 2]
    }
}
