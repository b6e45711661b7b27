import CUDADriver
import Foundation
import WideEPRuntime

/// The NVLink (CUDA IPC) expert-parallel transport of one rank: the symmetric buffer mapped on every rank, the
/// control words, and the dispatch/combine kernels in normal and low-latency modes.
///
/// Every method is stream-ordered on `gpu.stream` and every rank must call the same methods in the same order.
/// Nothing here synchronises with the host except `receivedRows()`, `checkHealth()` and the downloads.
public final class NVLinkEP {
    /// The rank's GPU (its stream carries every kernel).
    public let gpu: GPU
    /// This rank.
    public let rank: Int
    /// The group's shape.
    public let shape: EPShape
    /// Region offsets of the symmetric buffer.
    public let layout: EPBufferLayout
    /// The symmetric buffer of every rank, mapped here.
    public let memory: PeerMemory
    /// Wait timeout in seconds (turned into `clock64()` cycles at 2 GHz).
    public let timeoutSeconds: Double
    /// Blocks of the normal-mode dispatch and combine kernels (the SM budget of the transport).
    public var normalBlocks: Int

    let peersTable: DeviceArray<UInt64>
    let offsetsTable: DeviceArray<UInt64>
    /// Local control words: epochs [8], tickets [8], info [5R + 1], low-latency counters [E], counts [R].
    let control: DeviceArray<Int32>
    /// pos [maxTokens][R]: each token's row index among the rows sent to each rank, or −1.
    public let positions: DeviceArray<Int32>
    let diag: UnsafeMutablePointer<Int32>
    var diagAddress: CUdeviceptr { CUdeviceptr(UInt(bitPattern: diag)) }

    var epochsAddress: CUdeviceptr { control.address(at: 0) }
    var ticketsAddress: CUdeviceptr { control.address(at: 8) }
    /// Address of `info` (see the kernels: send/receive bases, counts, prefixes, total).
    public var infoAddress: CUdeviceptr { control.address(at: 16) }
    var countersAddress: CUdeviceptr { control.address(at: 16 + 5 * shape.ranks + 1) }
    /// Address of the per-destination send counts written by `computeLayout`, int32 [R].
    public var countsAddress: CUdeviceptr { control.address(at: 16 + 5 * shape.ranks + 1 + shape.experts) }

    /// Allocates and maps the symmetric buffer (collective: every rank of the group calls it with the same shape).
    public init(gpu: GPU, rank: Int, shape: EPShape, store: CommStore, name: String = "nvlink-ep",
                timeoutSeconds: Double = 30) throws {
        try shape.validate()
        guard rank >= 0 && rank < shape.ranks else {
            throw CommunicatorError.invalidPeer(rank: rank, peer: rank, size: shape.ranks)
        }
        self.gpu = gpu
        self.rank = rank
        self.shape = shape
        self.timeoutSeconds = timeoutSeconds
        normalBlocks = max(2, min(gpu.multiprocessors, 48))
        layout = try EPBufferLayout(shape: shape)
        memory = try PeerMemory(gpu: gpu, rank: rank, size: shape.ranks, byteCount: layout.totalBytes, store: store, name: name)
        peersTable = try DeviceArray(gpu, memory.pointers.map { UInt64($0) })
        offsetsTable = try DeviceArray(gpu, layout.offsets.map { UInt64($0) })
        let controlCount = 16 + 5 * shape.ranks + 1 + shape.experts + shape.ranks
        control = try DeviceArray(gpu, [Int32](repeating: 0, count: controlCount))
        positions = try DeviceArray(gpu, count: shape.maxTokens * shape.ranks)
        let api = gpu.context.api
        var host: UnsafeMutableRawPointer?
        // PORTABLE | DEVICEMAP: the kernels write timeouts here, readable even after a failed launch.
        try api.check(api.cuMemHostAlloc(&host, 64, 3), "cuMemHostAlloc(diagnostics)")
        diag = host!.bindMemory(to: Int32.self, capacity: 16)
        diag.initialize(repeating: 0, count: 16)
    }

    deinit {
        memory.close()
        _ = gpu.context.api.cuMemFreeHost(UnsafeMutableRawPointer(diag))
    }

    // MARK: Kernels

    /// Resolved kernel handles by (name, fp8): a launch must not re-hash the 27 KB module source (that cost about
    /// 150 µs of host time per kernel in the eager low-latency path).
    private var resolved: [String: CUhandle?] = [:]
    private let resolvedLock = NSLock()

    func function(_ name: String, fp8: Bool = false) throws -> CUhandle? {
        let cacheKey = fp8 ? name + "#fp8" : name
        resolvedLock.lock()
        defer { resolvedLock.unlock() }
        if let f = resolved[cacheKey] { return f }
        let key = KernelKey(
            name: "ep_comm.cu", source: EPKernelSource.module,
            defines: ["FP8": fp8 ? "1" : "0", "EP_PORTABLE": Self.portable ? "1" : "0"], architecture: gpu.architecture)
        let f = try gpu.kernels.function(key, name)
        resolved[cacheKey] = f
        return f
    }

    /// `WIDEEP_EP_PORTABLE=1`: volatile accesses and `__threadfence_system` instead of the sys-scope PTX, and a
    /// software e4m3 conversion (a fallback for toolchains that reject the inline PTX).
    static let portable = ProcessInfo.processInfo.environment["WIDEEP_EP_PORTABLE"] == "1"

    var timeoutCycles: Int64 { Int64(timeoutSeconds * 2e9) }
    var base: [KernelArg] { [.ptr(peersTable.pointer), .ptr(offsetsTable.pointer), .int(rank), .int(shape.ranks)] }

    /// Address of `region` of this rank's symmetric buffer.
    public func localAddress(_ region: EPBufferLayout.Region) -> CUdeviceptr {
        memory.pointers[rank] + UInt64(layout.offset(region))
    }

    /// Address of `region` of rank `peer`'s symmetric buffer, as mapped here.
    public func peerAddress(_ region: EPBufferLayout.Region, rank peer: Int) -> CUdeviceptr {
        memory.pointers[peer] + UInt64(layout.offset(region))
    }

    /// Device barrier of all ranks (flags only; no host involvement).
    public func barrier() throws {
        try gpu.launch(
            try function("ep_barrier"), grid: (1, 1, 1), block: (32, 1, 1),
            args: base + [.ptr(epochsAddress), .i64(timeoutCycles), .ptr(diagAddress)], name: "ep_barrier")
    }

    /// Signals flag `kind` (after copy-engine writes issued earlier on the stream) and waits for all ranks' same.
    func signalAndWait(kind: Int32) throws {
        try gpu.launch(
            try function("ep_signal"), grid: (1, 1, 1), block: (32, 1, 1),
            args: base + [.i32(kind), .ptr(epochsAddress)], name: "ep_signal")
        try wait(kind: kind)
    }

    func wait(kind: Int32) throws {
        try gpu.launch(
            try function("ep_wait"), grid: (1, 1, 1), block: (32, 1, 1),
            args: base + [.i32(kind), .ptr(epochsAddress), .i64(timeoutCycles), .ptr(diagAddress)], name: "ep_wait")
    }

    /// Copy table of `copySegments` (3 words per segment), grown on demand.
    private var segmentTable: DeviceArray<UInt64>?

    /// Copies `segments` (destination, source, bytes) with SM threads in one launch on the stream, instead of one
    /// copy-engine transfer each: with several processes on one GPU (or many peers) the copy engines serialise the
    /// transfers and queue them behind host-to-device weight copies, while a kernel moves them at memory speed. The
    /// stores are published (system fence) before the kernel ends, so a following `signalAndWait` covers them.
    public func copySegments(_ segments: [(dst: CUdeviceptr, src: CUdeviceptr, bytes: Int)]) throws {
        let live = segments.filter { $0.bytes > 0 }
        if live.isEmpty { return }
        if (segmentTable?.count ?? 0) < 3 * live.count {
            segmentTable = try DeviceArray<UInt64>(gpu, count: 3 * max(live.count, shape.ranks + 1))
        }
        let table = segmentTable!, words = live.flatMap { [UInt64($0.dst), UInt64($0.src), UInt64($0.bytes)] }
        let api = gpu.context.api
        try words.withUnsafeBytes { raw in
            // Pageable source: the driver stages it before returning, and the copy is ordered before the kernel.
            try api.check(api.cuMemcpyHtoDAsync(table.pointer, raw.baseAddress, raw.count, gpu.stream.handle),
                          "cuMemcpyHtoDAsync(copy table)")
        }
        let widest = live.map(\.bytes).max()!
        let blocks = max(1, min(Self.copyBlocksPerSegment, widest / (256 * 16 * 4)))
        try gpu.launch(
            try function("ep_copy_segments"), grid: (blocks, live.count, 1), block: (256, 1, 1),
            args: [.ptr(table.pointer), .int(live.count)], name: "ep_copy_segments")
    }

    /// Most blocks `copySegments` gives one segment.
    static let copyBlocksPerSegment = 32

    /// `WIDEEP_A2A_COPY`: how the runtime communicator moves all-to-all and all-gather blocks — `engine` (default;
    /// one copy-engine transfer per block, leaving the SMs to the GEMMs) or `sm` (one copy kernel). On one H200 with
    /// eight MPS-partitioned ranks the two measured the same (docs/PERFORMANCE.md); both pass the verified run.
    public static let copiesOnSMs = ProcessInfo.processInfo.environment["WIDEEP_A2A_COPY"] == "sm"

    /// The send layout of `tokens` tokens from `topk` (int32 [tokens, K]): fills `positions` and the counts.
    public func computeLayout(topk: CUdeviceptr, tokens: Int) throws {
        try checkTokens(tokens, limit: shape.maxTokens, mode: "normal")
        try gpu.launch(
            try function("ep_layout"), grid: (shape.ranks, 1, 1), block: (1024, 1, 1),
            args: [.ptr(topk), .int(tokens), .int(shape.topK), .int(shape.expertsPerRank), .int(shape.ranks),
                   .ptr(positions.pointer), .ptr(countsAddress)], name: "ep_layout")
    }

    /// Exchanges the int32 [R] counts at `counts` with every rank and derives `info` (device-side all-gather).
    public func notify(counts: CUdeviceptr? = nil) throws {
        try gpu.launch(
            try function("ep_notify"), grid: (1, 1, 1), block: (128, 1, 1),
            args: base + [.ptr(counts ?? countsAddress), .ptr(epochsAddress), .ptr(infoAddress), .i64(timeoutCycles),
                          .ptr(diagAddress)], name: "ep_notify")
    }

    func checkTokens(_ tokens: Int, limit: Int, mode: String) throws {
        guard tokens >= 0 && tokens <= limit else {
            throw CommunicatorError.bufferTooSmall(rank: rank, needed: tokens, available: limit)
        }
    }
}
