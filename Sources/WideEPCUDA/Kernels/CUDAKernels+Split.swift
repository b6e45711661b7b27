import CUDADriver
import WideEPCore

/// When the GPU balanced split (`CUDAKernels.balancedSplit`, its twin `SplitReference.solve`) stops.
public enum SplitStop: Equatable, Sendable {
    /// Core's visiting order and stop rules: quotas identical to `ReplicaSplit.quotas(…, policy: .balanced)`.
    case core
    /// Passes in the host's conflict coloring that stop once a lower bound proves the max rank load within a factor
    /// 1 + 2^-shift of the optimum, so of Core's; Core's passes from scratch when they cannot prove it (and for
    /// placements over `SplitWarpTables.maxCertifiedRanks` ranks). `shift` in 0...30.
    case certified(shift: Int)

    /// The production default: max rank load within 1 + 2^-7 (0.78%) of the optimum, so at most 1.0079 × Core's
    /// (shift 8 halves the tolerance for about 1.3 µs more per layer on R1 EP 32 prefill batches; docs/PERFORMANCE.md).
    public static let `default` = SplitStop.certified(shift: 7)

    /// The largest max rank load / Core's this stop allows (1 for `core`).
    public var ratioLimit: Double {
        switch self {
        case .core: return 1
        case .certified(let shift): return 1 + 1 / Double(1 << shift)
        }
    }

    /// The kernel's `shift` argument: the tolerance exponent, -1 for `core`.
    var kernelShift: Int {
        switch self {
        case .core: return -1
        case .certified(let shift):
            precondition((0...30).contains(shift), "SplitStop.certified: shift \(shift) outside 0...30")
            return shift
        }
    }
}

extension CUDAKernels {
    /// Passes and stall limit of the balanced split; the same values as Core's `ReplicaSplit.maxBalancedPasses` and
    /// `ReplicaSplit.stallPasses`, so the GPU visits the same states as the CPU.
    static let splitPasses = 64
    static let splitStallPasses = 3
    /// Stall limit of the one-warp kernel (`SplitWarpSource`) and its twin: passes without a lower peak.
    public static let splitWarpStallPasses = 3
    /// Most slots (and ranks) the split takes.
    static let maxSplitEntries = 1024
    /// Static shared memory one block may use without the opt-in.
    static let maxSplitSharedBytes = 48 * 1024

    /// Bound on the multi-rank experts of a placement: each needs an extra replica, and there are `numExperts`.
    static func splitMultiBound(_ p: Placement) -> Int { max(1, min(p.numExperts, p.numSlots - p.numExperts)) }
    /// Bound on the run entries: an expert on k ≥ 2 ranks has k − 1 ≥ k / 2 extra replicas.
    static func splitEntryBound(_ p: Placement) -> Int { max(1, min(p.numSlots, 2 * (p.numSlots - p.numExperts))) }

    /// Static shared memory of `balanced_split` for `p`'s shape, bytes (the arrays of `SplitSource`).
    static func splitSharedBytes(_ p: Placement) -> Int {
        let m = splitMultiBound(p), a = splitEntryBound(p)
        return 8 * p.numRanks + 4 * p.numSlots + 12 * p.numExperts + 16 * m + 4 * (m + 1) + 8 * (m + 1) + 8 * m
            + 28 * a + 4 * (p.numRanks + 1) + 8 + 8 + 4
    }

    /// The compiled `balanced_split` for `p`'s shape with `groupWidth` lanes per expert (compiled once per process).
    ///
    /// Throws `CUDAError.invalidRequest` when the shape exceeds the kernel's limits (slots, ranks, shared memory).
    static func splitFunction(gpu: GPU, placement p: Placement, groupWidth: Int) throws -> CUhandle? {
        guard p.numSlots <= maxSplitEntries, p.numRanks <= maxSplitEntries else {
            throw CUDAError.invalidRequest(
                "balancedSplit: \(p.numSlots) slots on \(p.numRanks) ranks; the GPU split takes at most "
                    + "\(maxSplitEntries) of each")
        }
        let bytes = splitSharedBytes(p)
        guard bytes <= maxSplitSharedBytes else {
            throw CUDAError.invalidRequest(
                "balancedSplit: E=\(p.numExperts) slots=\(p.numSlots) ranks=\(p.numRanks) needs \(bytes) bytes of "
                    + "shared memory; the GPU split takes at most \(maxSplitSharedBytes)")
        }
        precondition(groupWidth >= 2 && groupWidth <= SplitTables.maxRanksPerExpert && groupWidth & (groupWidth - 1) == 0)
        let defines = [
            "NE": "\(p.numExperts)", "NR": "\(p.numRanks)", "NS": "\(p.numSlots)", "G": "\(groupWidth)",
            "MMAX": "\(splitMultiBound(p))", "AMAX": "\(splitEntryBound(p))",
            "PASSES": "\(splitPasses)", "STALL": "\(splitStallPasses)",
        ]
        return try gpu.kernels.function(
            KernelKey(name: "split.cu", source: SplitSource.source, defines: defines, architecture: gpu.architecture),
            "balanced_split")
    }

    /// The compiled `balanced_split_warp` for `p`'s shape and `t`'s lanes and rank slots (compiled once per process).
    static func splitWarpFunction(gpu: GPU, placement p: Placement, tables t: SplitWarpTables) throws -> CUhandle? {
        let defines = [
            "NE": "\(p.numExperts)", "NR": "\(p.numRanks)", "NS": "\(p.numSlots)", "MPL": "\(t.expertsPerLane)",
            "KMAX": "\(t.ranksPerExpert)", "UNROLLK": "\(t.ranksPerExpert <= 8 ? t.ranksPerExpert : 1)",
            "PASSES": "\(splitPasses)", "STALL": "\(splitWarpStallPasses)",
            "CERTMAXR": "\(SplitWarpTables.maxCertifiedRanks)",
        ]
        return try gpu.kernels.function(
            KernelKey(name: "split_warp.cu", source: SplitWarpSource.source, defines: defines,
                      architecture: gpu.architecture),
            "balanced_split_warp")
    }

    /// Balanced replica split of one batch on the GPU (one block, one launch): per-replica quotas `quotas` (int32
    /// [numSlots], aligned with `placement.replicaSlots`) from the global per-expert `counts` (int32 [E], ≥ 0).
    ///
    /// Every expert's quotas sum to its count. With `stop: .core` the quotas are Core's
    /// `ReplicaSplit.quotas(expertCounts:placement:policy: .balanced)` exactly (per slot there; use
    /// `SplitTables.slotQuotas` to compare); with the default `.certified(shift: 7)` the max rank load is within
    /// 1 + 2^-7 of the optimum (so of Core's), proven in the kernel by a lower bound. Either way the quotas equal the
    /// CPU twin `SplitReference.solve(…, stop:)`. Runs the one-warp kernel (`SplitWarpSource`) when the placement has
    /// at most 128 multi-rank experts, else the level-parallel one (`SplitSource`, Core's quotas). Issued on `stream`
    /// (the GPU's stream by default); does not synchronize. `profile` (6 zeroed u64, or nil) accumulates SM cycles of
    /// the prologue and in all, global-timer ns, launches, passes and levels (+ 2^32 per fallback to Core's passes).
    public func balancedSplit(
        counts: DeviceArray<Int32>, tables: DeviceSplitTables, quotas: DeviceArray<Int32>, stop: SplitStop = .default,
        stream: CUDAStream? = nil, profile: DeviceArray<UInt64>? = nil
    ) throws {
        guard let packed = tables.packed else {
            try balancedSplitLevels(counts: counts, tables: tables, quotas: quotas, stream: stream, profile: profile)
            return
        }
        try Self.checkSplitBuffers(counts: counts, quotas: quotas, placement: tables.placement)
        try gpu.launch(
            tables.warpFunction, grid: (1, 1, 1), block: (256, 1, 1),
            args: [
                .ptr(counts.pointer), .ptr(packed.pointer), .int(tables.tables.multiCount), .int(stop.kernelShift),
                .ptr(quotas.pointer), .ptr(profile?.pointer ?? 0),
            ], name: "balanced_split_warp", on: stream)
    }

    /// The level-parallel kernel (`SplitSource`: a lane group per expert, the whole block, a barrier per level), the
    /// same quotas as `balancedSplit`; the fallback beyond 128 multi experts and a baseline of `wide-ep bench split`.
    public func balancedSplitLevels(
        counts: DeviceArray<Int32>, tables: DeviceSplitTables, quotas: DeviceArray<Int32>, stream: CUDAStream? = nil,
        profile: DeviceArray<UInt64>? = nil
    ) throws {
        let p = tables.placement
        try Self.checkSplitBuffers(counts: counts, quotas: quotas, placement: p)
        try gpu.launch(
            tables.function, grid: (1, 1, 1), block: (256, 1, 1),
            args: [
                .ptr(counts.pointer), .ptr(tables.replicaStart.pointer), .ptr(tables.expertHome.pointer),
                .ptr(tables.multiIndex.pointer), .ptr(tables.runStart.pointer), .ptr(tables.runReplica.pointer),
                .ptr(tables.runRank.pointer), .ptr(tables.runOwner.pointer), .ptr(tables.rankStart.pointer),
                .ptr(tables.rankMulti.pointer), .int(tables.tables.multiCount), .int(tables.tables.runRank.count),
                .ptr(quotas.pointer), .ptr(profile?.pointer ?? 0),
            ], name: "balanced_split", on: stream)
    }

    /// The first GPU split (`SplitSerialSource`: warp 0 runs the passes one expert at a time), the same quotas as
    /// `balancedSplit`; kept as a baseline of `wide-ep bench split`.
    public func balancedSplitSerial(
        counts: DeviceArray<Int32>, tables: DeviceSplitTables, quotas: DeviceArray<Int32>, stream: CUDAStream? = nil
    ) throws {
        let p = tables.placement
        try Self.checkSplitBuffers(counts: counts, quotas: quotas, placement: p)
        let defines = [
            "NE": "\(p.numExperts)", "NR": "\(p.numRanks)", "NS": "\(p.numSlots)", "P": "\(p.slotsPerRank)",
            "PASSES": "\(Self.splitPasses)", "STALL": "\(Self.splitStallPasses)",
        ]
        let f = try gpu.kernels.function(
            KernelKey(name: "split_serial.cu", source: SplitSerialSource.source, defines: defines,
                      architecture: gpu.architecture),
            "balanced_split_serial")
        try gpu.launch(
            f, grid: (1, 1, 1), block: (256, 1, 1),
            args: [
                .ptr(counts.pointer), .ptr(tables.replicaStart.pointer), .ptr(tables.replicaSlots.pointer),
                .ptr(tables.multiIndex.pointer), .ptr(tables.multiExpert.pointer), .ptr(tables.runStart.pointer),
                .ptr(tables.runReplica.pointer), .ptr(tables.runRank.pointer), .int(tables.tables.multiCount),
                .ptr(quotas.pointer),
            ], name: "balanced_split_serial", on: stream)
    }

    static func checkSplitBuffers(counts: DeviceArray<Int32>, quotas: DeviceArray<Int32>, placement p: Placement) throws {
        guard counts.count >= p.numExperts, quotas.count >= p.numSlots else {
            throw CUDAError.invalidRequest(
                "balancedSplit: counts has \(counts.count) entries (needs \(p.numExperts)), quotas \(quotas.count) "
                    + "(needs \(p.numSlots))")
        }
    }
}
