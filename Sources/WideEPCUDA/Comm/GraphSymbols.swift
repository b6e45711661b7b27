import CUDADriver

/// The CUDA-graph entry points (stream capture, instantiate, launch, destroy), resolved once from `libcuda.so.1`
/// like `IPCSymbols`; failures throw `CUDAError.driver` with the driver's `cuGetErrorString` text.
public struct GraphSymbols: @unchecked Sendable {
    /// `cuStreamBeginCapture_v2(CUstream, CUstreamCaptureMode)`.
    let cuStreamBeginCapture: @convention(c) (CUhandle?, UInt32) -> Int32
    /// `cuStreamEndCapture(CUstream, CUgraph*)`.
    let cuStreamEndCapture: @convention(c) (CUhandle?, UnsafeMutablePointer<CUhandle?>) -> Int32
    /// `cuGraphInstantiateWithFlags(CUgraphExec*, CUgraph, unsigned long long flags)`.
    let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<CUhandle?>, CUhandle?, UInt64) -> Int32
    /// `cuGraphLaunch(CUgraphExec, CUstream)`.
    let cuGraphLaunch: @convention(c) (CUhandle?, CUhandle?) -> Int32
    /// `cuGraphExecDestroy(CUgraphExec)`.
    let cuGraphExecDestroy: @convention(c) (CUhandle?) -> Int32
    /// `cuGraphDestroy(CUgraph)`.
    let cuGraphDestroy: @convention(c) (CUhandle?) -> Int32
    /// The driver table, for `check`.
    public let driver: DriverAPI

    /// `CU_STREAM_CAPTURE_MODE_RELAXED`: other threads' and this thread's unsafe calls stay legal during capture.
    public static let captureModeRelaxed: UInt32 = 2
    /// `CU_STREAM_CAPTURE_MODE_THREAD_LOCAL`.
    public static let captureModeThreadLocal: UInt32 = 1

    /// Resolves the symbols; throws `CUDAError.libraryNotFound` without a driver, `missingSymbol` on an old one.
    public static func load() throws -> GraphSymbols { try cached.get() }

    private static let cached: Result<GraphSymbols, Error> = Result {
        try GraphSymbols(try openDriverLibrary(), driver: try CUDA.driver())
    }

    init(_ lib: SharedLibrary, driver: DriverAPI) throws {
        self.driver = driver
        cuStreamBeginCapture = try lib.function("cuStreamBeginCapture_v2")
        cuStreamEndCapture = try lib.function("cuStreamEndCapture")
        cuGraphInstantiateWithFlags = try lib.function("cuGraphInstantiateWithFlags")
        cuGraphLaunch = try lib.function("cuGraphLaunch")
        cuGraphExecDestroy = try lib.function("cuGraphExecDestroy")
        cuGraphDestroy = try lib.function("cuGraphDestroy")
    }
}

/// An instantiated CUDA graph captured from the work one closure issues on a stream; replay it with `launch`.
///
/// Capture records, it does not execute: kernels that wait for peers only run at `launch`, so every rank may
/// capture on its own. Kernel arguments are frozen at capture (pointers, sizes), so inputs must be written into
/// the same buffers before each replay, and any per-call state must live in device memory (as the EP epochs do).
public final class CUDAGraph {
    let symbols: GraphSymbols
    let graph: CUhandle?
    let exec: CUhandle?

    /// Captures what `body` issues on `stream` (relaxed mode) and instantiates it. If `body` or the capture fails,
    /// the capture is ended (the stream usable again) and the error rethrown.
    public init(stream: CUDAStream, mode: UInt32 = GraphSymbols.captureModeRelaxed, _ body: () throws -> Void) throws {
        let sym = try GraphSymbols.load()
        symbols = sym
        let api = sym.driver
        try api.check(sym.cuStreamBeginCapture(stream.handle, mode), "cuStreamBeginCapture_v2")
        var g: CUhandle?
        do {
            try body()
        } catch {
            _ = sym.cuStreamEndCapture(stream.handle, &g)
            if g != nil { _ = sym.cuGraphDestroy(g) }
            throw error
        }
        try api.check(sym.cuStreamEndCapture(stream.handle, &g), "cuStreamEndCapture")
        var e: CUhandle?
        let status = sym.cuGraphInstantiateWithFlags(&e, g, 0)
        if status != 0 { _ = sym.cuGraphDestroy(g) }
        try api.check(status, "cuGraphInstantiateWithFlags")
        graph = g
        exec = e
    }

    /// Enqueues one replay of the graph on `stream` (asynchronous, like a kernel launch).
    public func launch(on stream: CUDAStream) throws {
        try symbols.driver.check(symbols.cuGraphLaunch(exec, stream.handle), "cuGraphLaunch")
    }

    deinit {
        _ = symbols.cuGraphExecDestroy(exec)
        _ = symbols.cuGraphDestroy(graph)
    }
}
