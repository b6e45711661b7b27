import CUDADriver
import WideEPCore

extension CUDAKernels {
    /// Passes and stall limit of the balanced split; the same values as Core's `ReplicaSplit.maxBalancedPasses` and
    /// `ReplicaSplit.stallPasses`, so the GPU visits the same states as the CPU.
    static let splitPasses = 64
    static let splitStallPasses = 3
    /// Most slots (and ranks) the split's shared-memory tables take (within 48 KiB of static shared memory).
    static let maxSplitEntries = 1024

    /// Balanced replica split of one batch on the GPU (one block): per-replica quotas `quotas` (int32 [numSlots],
    /// aligned with `placement.replicaSlots`) from the global per-expert `counts` (int32 [E], non-negative).
    ///
    /// The same quotas as `ReplicaSplit.quotas(expertCounts:placement:policy: .balanced)` (per slot there; use
    /// `SplitTables.slotQuotas` to compare). Issued on `stream` (the GPU's stream by default); does not synchronize.
    public func balancedSplit(
        counts: DeviceArray<Int32>, tables: DeviceSplitTables, quotas: DeviceArray<Int32>, stream: CUDAStream? = nil
    ) throws {
        let p = tables.placement
        guard counts.count >= p.numExperts, quotas.count >= p.numSlots else {
            throw CUDAError.invalidRequest(
                "balancedSplit: counts has \(counts.count) entries (needs \(p.numExperts)), quotas \(quotas.count) "
                    + "(needs \(p.numSlots))")
        }
        guard p.numSlots <= Self.maxSplitEntries, p.numRanks <= Self.maxSplitEntries else {
            throw CUDAError.invalidRequest(
                "balancedSplit: \(p.numSlots) slots on \(p.numRanks) ranks; the GPU split takes at most "
                    + "\(Self.maxSplitEntries) of each")
        }
        let defines = [
            "NE": "\(p.numExperts)", "NR": "\(p.numRanks)", "NS": "\(p.numSlots)", "P": "\(p.slotsPerRank)",
            "PASSES": "\(Self.splitPasses)", "STALL": "\(Self.splitStallPasses)",
        ]
        let f = try gpu.kernels.function(
            KernelKey(name: "split.cu", source: SplitSource.source, defines: defines, architecture: gpu.architecture),
            "balanced_split")
        try gpu.launch(
            f, grid: (1, 1, 1), block: (256, 1, 1),
            args: [
                .ptr(counts.pointer), .ptr(tables.replicaStart.pointer), .ptr(tables.replicaSlots.pointer),
                .ptr(tables.multiIndex.pointer), .ptr(tables.multiExpert.pointer), .ptr(tables.runStart.pointer),
                .ptr(tables.runReplica.pointer), .ptr(tables.runRank.pointer), .int(tables.tables.multiCount),
                .ptr(quotas.pointer),
            ], name: "balanced_split", on: stream)
    }
}
