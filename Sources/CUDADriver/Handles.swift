/// A device's primary context, retained on init and released exactly once on deinit. Made current on the calling
/// thread by `makeCurrent()`; cuBLAS shares it (it uses the runtime API's primary context).
public final class CUDAContext: @unchecked Sendable {
    /// Driver table used for every call on this context.
    public let api: DriverAPI
    /// Device ordinal.
    public let ordinal: Int32
    /// The `CUdevice` handle.
    public let device: Int32
    /// The raw `CUcontext`.
    public let handle: CUhandle?

    /// Retains the primary context of device `ordinal` and makes it current.
    public init(ordinal: Int) throws {
        api = try CUDA.driver()
        let count = try CUDA.deviceCount()
        guard ordinal >= 0 && ordinal < count else {
            throw CUDAError.invalidRequest("CUDA device \(ordinal) does not exist: \(count) device(s) visible")
        }
        self.ordinal = Int32(ordinal)
        var dev: Int32 = 0
        try api.check(api.cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        device = dev
        var ctx: CUhandle?
        try api.check(api.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain(\(ordinal))")
        handle = ctx
        try makeCurrent()
    }

    /// Binds the context to the calling thread.
    public func makeCurrent() throws {
        try api.check(api.cuCtxSetCurrent(handle), "cuCtxSetCurrent")
    }

    /// Waits for all work on the device.
    public func synchronize() throws { try api.check(api.cuCtxSynchronize(), "cuCtxSynchronize") }

    /// An integer device attribute (`CUAttribute`).
    public func attribute(_ attr: Int32) throws -> Int {
        var v: Int32 = 0
        try api.check(api.cuDeviceGetAttribute(&v, attr, device), "cuDeviceGetAttribute(\(attr))")
        return Int(v)
    }

    deinit { _ = api.cuDevicePrimaryCtxRelease(device) }
}

/// A non-blocking CUDA stream, destroyed exactly once.
public final class CUDAStream: @unchecked Sendable {
    let api: DriverAPI
    /// The raw `CUstream`.
    public let handle: CUhandle?

    public init(context: CUDAContext) throws {
        api = context.api
        var s: CUhandle?
        try api.check(api.cuStreamCreate(&s, CUAttribute.streamNonBlocking), "cuStreamCreate")
        handle = s
    }

    /// Blocks until the stream's work is done.
    public func synchronize() throws { try api.check(api.cuStreamSynchronize(handle), "cuStreamSynchronize") }

    /// Makes later work on this stream wait for `event`.
    public func wait(_ event: CUDAEvent) throws {
        try api.check(api.cuStreamWaitEvent(handle, event.handle, 0), "cuStreamWaitEvent")
    }

    deinit { _ = api.cuStreamDestroy(handle) }
}

/// A CUDA event (with timing), destroyed exactly once.
public final class CUDAEvent: @unchecked Sendable {
    let api: DriverAPI
    /// The raw `CUevent`.
    public let handle: CUhandle?

    /// - Parameter blockingSync: `synchronize()` sleeps until the event completes instead of spinning a core (for
    ///   waits on background threads, e.g. a copy lane, that would otherwise compete with compute threads).
    public init(context: CUDAContext, timing: Bool = true, blockingSync: Bool = false) throws {
        api = context.api
        var e: CUhandle?
        let flags = (timing ? 0 : CUAttribute.eventDisableTiming) | (blockingSync ? CUAttribute.eventBlockingSync : 0)
        try api.check(api.cuEventCreate(&e, flags), "cuEventCreate")
        handle = e
    }

    /// Records the event on `stream`.
    public func record(on stream: CUDAStream) throws {
        try api.check(api.cuEventRecord(handle, stream.handle), "cuEventRecord")
    }

    /// Blocks until the event has completed.
    public func synchronize() throws { try api.check(api.cuEventSynchronize(handle), "cuEventSynchronize") }

    /// Milliseconds from `start` to this event (both recorded and complete).
    public func elapsed(since start: CUDAEvent) throws -> Double {
        var ms: Float = 0
        try api.check(api.cuEventElapsedTime(&ms, start.handle, handle), "cuEventElapsedTime")
        return Double(ms)
    }

    deinit { _ = api.cuEventDestroy(handle) }
}

/// A loaded module (CUBIN), unloaded exactly once; hands out its kernels.
public final class CUDAModule: @unchecked Sendable {
    let api: DriverAPI
    /// The raw `CUmodule`.
    public let handle: CUhandle?
    /// Name shown in errors (the source's name).
    public let name: String

    /// Loads `image` (a CUBIN from NVRTC) into the current context.
    public init(context: CUDAContext, image: [UInt8], name: String) throws {
        let api = context.api
        var m: CUhandle?
        try image.withUnsafeBytes { raw in
            try api.check(api.cuModuleLoadData(&m, raw.baseAddress!), "cuModuleLoadData(\(name))")
        }
        self.api = api
        self.name = name
        handle = m
    }

    /// The `extern "C"` kernel `function`.
    public func function(_ function: String) throws -> CUhandle? {
        var f: CUhandle?
        try api.check(api.cuModuleGetFunction(&f, handle, function), "cuModuleGetFunction(\(name).\(function))")
        return f
    }

    deinit { _ = api.cuModuleUnload(handle) }
}

/// A cuBLAS handle bound to one stream, destroyed exactly once.
public final class CUBLASHandle: @unchecked Sendable {
    /// The cuBLAS table.
    public let api: CUBLASAPI
    /// The raw `cublasHandle_t`.
    public let handle: OpaquePointer?

    /// Creates a handle on the current context and binds it to `stream`.
    public init(stream: CUDAStream) throws {
        api = try CUDA.cublas()
        var h: OpaquePointer?
        try api.check(api.cublasCreate(&h), "cublasCreate")
        handle = h
        try setStream(stream)
    }

    /// Routes later calls to `stream`.
    public func setStream(_ stream: CUDAStream) throws {
        try api.check(api.cublasSetStream(handle, stream.handle), "cublasSetStream")
    }

    /// cuBLAS's version number (e.g. 130100).
    public func version() throws -> Int {
        var v: Int32 = 0
        try api.check(api.cublasGetVersion(handle, &v), "cublasGetVersion")
        return Int(v)
    }

    deinit { _ = api.cublasDestroy(handle) }
}
