import CUDADriver
import WideEPCore

/// One typed launcher per WideEP kernel. Each compiles its source through the GPU's `KernelCache` with the shape
/// constants of `config` as `#define`s, so kernels are built once per (source, shape, architecture).
public struct CUDAKernels {
    /// The GPU the kernels run on.
    public let gpu: GPU
    /// The layer shape the kernels are specialised for.
    public let config: MoEConfig

    public init(gpu: GPU, config: MoEConfig) {
        self.gpu = gpu
        self.config = config
    }

    static let warpsPerRoutingBlock = 4

    private func kernel(_ name: String, _ source: String, _ defines: [String: String], _ fn: String) throws
        -> CUhandle?
    {
        try gpu.kernels.function(
            KernelKey(name: name, source: source, defines: defines, architecture: gpu.architecture), fn)
    }

    private var routingDefines: [String: String] {
        [
            "NE": "\(config.numExperts)", "NK": "\(config.topK)", "NG": "\(config.numGroups)",
            "TOPKG": "\(config.topKGroup)", "SIGMOID": config.scoring == .sigmoid ? "1" : "0",
            "HAS_BIAS": config.hasCorrectionBias ? "1" : "0", "NORM": config.normTopKProb ? "1" : "0",
            "WARPS": "\(Self.warpsPerRoutingBlock)",
        ]
    }

    /// Routes `tokens` rows of float32 `logits` [T, E] into `experts` (int32 [T, K]) and `weights` (float32 [T, K]).
    public func route(
        logits: DeviceArray<Float>, bias: DeviceArray<Float>?, tokens: Int, experts: DeviceArray<Int32>,
        weights: DeviceArray<Float>
    ) throws {
        precondition(logits.count >= tokens * config.numExperts && experts.count >= tokens * config.topK)
        if config.hasCorrectionBias && bias == nil {
            throw CUDAError.invalidRequest("route: config \(config.name) needs a correction bias [\(config.numExperts)]")
        }
        let f = try kernel("routing.cu", RoutingSource.source, routingDefines, "route_topk")
        let w = Self.warpsPerRoutingBlock
        try gpu.launch(
            f, grid: ((tokens + w - 1) / w, 1, 1), block: (32 * w, 1, 1),
            args: [
                .ptr(logits.pointer), .ptr(bias?.pointer ?? 0), .int(tokens), .f32(config.routedScalingFactor),
                .ptr(experts.pointer), .ptr(weights.pointer),
            ], name: "route_topk")
    }

    /// Adds the number of pairs routed to each expert into `counts` (int32 [E], zeroed here first).
    public func count(experts: DeviceArray<Int32>, pairs: Int, counts: DeviceArray<Int32>) throws {
        try counts.zero(gpu)
        let f = try kernel("stats.cu", StatsSource.source, ["NE": "\(config.numExperts)"], "count_experts")
        let blocks = max(1, min(gpu.multiprocessors * 2, (pairs + 1023) / 1024))
        try gpu.launch(
            f, grid: (blocks, 1, 1), block: (256, 1, 1),
            args: [.ptr(experts.pointer), .int(pairs), .ptr(counts.pointer)], name: "count_experts")
    }

    /// Maps each (token, k) pair to a global slot and an expert-major row (see `LayoutSource`).
    ///
    /// - Parameters: `tables` holds the device copies of the placement's CSR and this batch's quota tables.
    public func mapSlots(
        experts: DeviceArray<Int32>, pairs: Int, tables: SlotTables, slot: DeviceArray<Int32>,
        position: DeviceArray<Int32>
    ) throws {
        let f = try kernel("layout.cu", LayoutSource.source, ["NK": "\(config.topK)"], "map_slots")
        try gpu.launch(
            f, grid: (config.numExperts, 1, 1), block: (1024, 1, 1),
            args: [
                .ptr(experts.pointer), .int(pairs), .ptr(tables.rankOffset.pointer), .ptr(tables.replicaStart.pointer),
                .ptr(tables.replicaSlot.pointer), .ptr(tables.quotaStart.pointer), .ptr(tables.slotRowStart.pointer),
                .ptr(slot.pointer), .ptr(position.pointer),
            ], name: "map_slots")
    }

    /// Copies each pair's token row of `x` (bf16 [T, H]) to row `position[p]` of `xs` (bf16 [rows, H]).
    public func permute(x: DeviceArray<UInt16>, position: DeviceArray<Int32>, pairs: Int, xs: DeviceArray<UInt16>)
        throws
    {
        let h = config.hiddenSize
        try Self.requireVectorizable(h, "hiddenSize")
        let f = try kernel("layout.cu", LayoutSource.source, ["NK": "\(config.topK)"], "permute_rows")
        try gpu.launch(
            f, grid: (pairs, 1, 1), block: (min(256, max(32, h / 8)), 1, 1),
            args: [.ptr(x.pointer), .ptr(position.pointer), .int(h / 8), .ptr(xs.pointer)], name: "permute_rows")
    }

    /// `h = silu(y[:, :I]) · y[:, I:]` for `rows` rows of `y` (bf16 [rows, 2I]) into `h` (bf16 [rows, I]).
    public func siluMul(y: CUdeviceptr, rows: Int, intermediate: Int, h: CUdeviceptr, stream: CUDAStream? = nil)
        throws
    {
        try Self.requireVectorizable(intermediate, "intermediate size")
        let f = try kernel("swiglu.cu", SwiGLUSource.source, [:], "silu_mul")
        let total = rows * intermediate / 8
        let blocks = max(1, min(gpu.multiprocessors * 16, (total + 255) / 256))
        try gpu.launch(
            f, grid: (blocks, 1, 1), block: (256, 1, 1),
            args: [.ptr(y), .i64(Int64(rows)), .int(intermediate), .ptr(h)], name: "silu_mul", on: stream)
    }

    /// `out[t] = shared[t] + Σ_k weights[t,k] · ys[position[t,k]]` for `tokens` tokens (bf16 rows of H).
    public func combine(
        ys: DeviceArray<UInt16>, position: DeviceArray<Int32>, weights: DeviceArray<Float>, shared: CUdeviceptr?,
        tokens: Int, out: DeviceArray<UInt16>
    ) throws {
        let h = config.hiddenSize
        try Self.requireVectorizable(h, "hiddenSize")
        let f = try kernel("combine.cu", CombineSource.source, ["NK": "\(config.topK)"], "combine")
        try gpu.launch(
            f, grid: (tokens, 1, 1), block: (min(256, max(32, h / 8)), 1, 1),
            args: [
                .ptr(ys.pointer), .ptr(position.pointer), .ptr(weights.pointer), .ptr(shared ?? 0), .int(h / 8),
                .ptr(out.pointer),
            ], name: "combine")
    }

    /// Fills `count` bf16 values at `out` with the hash-uniform values of blocks `firstBlock…` (see `RandomSource`).
    public func fillUniform(
        bf16 out: CUdeviceptr, count: Int, blockLength: Int, firstBlock: Int, seed: UInt32, scale: Float
    ) throws {
        let f = try kernel("random.cu", RandomSource.source, [:], "fill_uniform_bf16")
        try launchFill(f, out, count, blockLength, firstBlock, seed, scale, "fill_uniform_bf16")
    }

    /// Fills `count` float32 values at `out` with the hash-uniform values (see `RandomSource`).
    public func fillUniform(
        f32 out: CUdeviceptr, count: Int, blockLength: Int, firstBlock: Int, seed: UInt32, scale: Float
    ) throws {
        let f = try kernel("random.cu", RandomSource.source, [:], "fill_uniform_f32")
        try launchFill(f, out, count, blockLength, firstBlock, seed, scale, "fill_uniform_f32")
    }

    private func launchFill(
        _ f: CUhandle?, _ out: CUdeviceptr, _ count: Int, _ blockLength: Int, _ firstBlock: Int, _ seed: UInt32,
        _ scale: Float, _ name: String
    ) throws {
        let blocks = max(1, min(gpu.multiprocessors * 32, (count + 255) / 256))
        try gpu.launch(
            f, grid: (blocks, 1, 1), block: (256, 1, 1),
            args: [
                .ptr(out), .i64(Int64(count)), .i64(Int64(blockLength)), .i64(Int64(firstBlock)),
                .i32(Int32(bitPattern: seed)), .f32(scale),
            ], name: name)
    }

    /// Reads `bytes` bytes at `pointer` once (16-byte loads) and discards them: a read-bandwidth probe.
    public func readProbe(pointer: CUdeviceptr, bytes: Int, sink: DeviceArray<Int32>) throws {
        let f = try kernel("stats.cu", StatsSource.source, ["NE": "\(config.numExperts)"], "read_probe")
        try gpu.launch(
            f, grid: (gpu.multiprocessors * 8, 1, 1), block: (512, 1, 1),
            args: [.ptr(pointer), .i64(Int64(bytes / 16)), .ptr(sink.pointer)], name: "read_probe")
    }

    static func requireVectorizable(_ n: Int, _ what: String) throws {
        if n % 8 != 0 {
            throw CUDAError.invalidRequest("cuda kernels need \(what) divisible by 8 (16-byte rows); got \(n)")
        }
    }
}

/// Device copies of the tables `map_slots` reads: the placement's CSR (fixed per placement) and one batch's split.
public final class SlotTables {
    /// Occurrences of each expert on lower ranks, int32 [E] (zeros for EP = 1).
    public let rankOffset: DeviceArray<Int32>
    /// `placement.replicaStart`, int32 [E + 1].
    public let replicaStart: DeviceArray<Int32>
    /// `placement.replicaSlots`, int32 [S].
    public let replicaSlot: DeviceArray<Int32>
    /// Cumulative quota before each replica inside its expert, int32 [S] (aligned with `replicaSlot`).
    public let quotaStart: DeviceArray<Int32>
    /// First expert-major row of each global slot, or −1 for slots of other ranks, int32 [S].
    public let slotRowStart: DeviceArray<Int32>

    /// Uploads the placement's CSR; the per-batch tables are filled by `update`.
    public init(gpu: GPU, placement: Placement) throws {
        rankOffset = try DeviceArray(gpu, [Int32](repeating: 0, count: placement.numExperts))
        replicaStart = try DeviceArray(gpu, placement.replicaStart)
        replicaSlot = try DeviceArray(gpu, placement.replicaSlots)
        quotaStart = try DeviceArray(gpu, count: placement.numSlots)
        slotRowStart = try DeviceArray(gpu, count: placement.numSlots)
    }

    /// Uploads one batch's split tables (host arrays from `SlotMapReference.tables`).
    public func update(gpu: GPU, quotaStart q: [Int32], slotRowStart s: [Int32], rankOffset r: [Int32]? = nil) throws {
        try quotaStart.upload(q, gpu: gpu)
        try slotRowStart.upload(s, gpu: gpu)
        if let r { try rankOffset.upload(r, gpu: gpu) }
    }
}
