import CUDADriver
import WideEPCore

/// The placement-only tables of the GPU balanced split (`SplitSource`), packed once per layer placement.
///
/// A "multi" expert has replicas on two or more ranks; only those have a choice. Each one's run lists, per rank it
/// occupies (ascending), its first replica there: an index into `placement.replicaSlots`, and that rank. Experts are
/// listed in id order, which is the tie order of the CPU split. The rank lists invert the runs (the multi experts on
/// each rank), so the kernel finds each water-fill step's predecessor on a rank without a search.
public struct SplitTables: Equatable, Sendable {
    /// Most ranks one expert may span: the kernel gives each a lane of one warp.
    public static let maxRanksPerExpert = 32

    /// Position of each expert in `multiExpert`, or -1 when all its replicas sit on one rank, int32 [E].
    public let multiIndex: [Int32]
    /// Multi-rank experts in id order, int32 [M].
    public let multiExpert: [Int32]
    /// CSR start of each multi expert's run in `runReplica`/`runRank`, int32 [M + 1].
    public let runStart: [Int32]
    /// Replica index (into `replicaSlots`) of the expert's first replica on each rank of the run, int32 [A].
    public let runReplica: [Int32]
    /// The rank of each run entry, int32 [A].
    public let runRank: [Int32]
    /// The multi expert (index into `multiExpert`) of each run entry, int32 [A].
    public let runOwner: [Int32]
    /// The rank of each expert's first replica, int32 [E].
    public let expertHome: [Int32]
    /// CSR start of each rank's list in `rankMulti`, int32 [R + 1].
    public let rankStart: [Int32]
    /// Multi experts (indices into `multiExpert`, ascending) with a replica on each rank, int32 [A].
    public let rankMulti: [Int32]
    /// Most ranks any one expert spans (at least 1).
    public let maxRanks: Int

    /// Packs `placement`; throws when an expert spans more than `maxRanksPerExpert` ranks.
    public init(placement p: Placement) throws {
        var index = [Int32](repeating: -1, count: p.numExperts)
        var experts: [Int32] = [], start: [Int32] = [0], replica: [Int32] = [], rank: [Int32] = [], owner: [Int32] = []
        var home = [Int32](repeating: 0, count: p.numExperts)
        var widest = 1
        for e in 0..<p.numExperts {
            let a = Int(p.replicaStart[e]), b = Int(p.replicaStart[e + 1])
            home[e] = p.replicaSlots[a] / Int32(p.slotsPerRank)
            var run: [(Int32, Int32)] = []
            var prev = -1
            for i in a..<b {
                let r = Int(p.replicaSlots[i]) / p.slotsPerRank
                if r != prev { prev = r; run.append((Int32(i), Int32(r))) }
            }
            widest = max(widest, run.count)
            if run.count <= 1 { continue }
            if run.count > Self.maxRanksPerExpert {
                throw CUDAError.invalidRequest(
                    "balanced split: expert \(e) has replicas on \(run.count) ranks; the GPU split handles at most "
                        + "\(Self.maxRanksPerExpert) ranks per expert")
            }
            index[e] = Int32(experts.count)
            experts.append(Int32(e))
            for (i, r) in run { replica.append(i); rank.append(r); owner.append(index[e]) }
            start.append(Int32(replica.count))
        }
        // Invert the runs: a counting sort of the entries by rank, multi experts ascending within a rank.
        var rStart = [Int32](repeating: 0, count: p.numRanks + 1)
        for r in rank { rStart[Int(r) + 1] += 1 }
        for r in 0..<p.numRanks { rStart[r + 1] += rStart[r] }
        var fill = rStart
        var rMulti = [Int32](repeating: 0, count: rank.count)
        for (i, r) in rank.enumerated() {
            rMulti[Int(fill[Int(r)])] = owner[i]
            fill[Int(r)] += 1
        }
        multiIndex = index
        multiExpert = experts
        runStart = start
        runReplica = replica
        runRank = rank
        runOwner = owner
        expertHome = home
        rankStart = rStart
        rankMulti = rMulti
        maxRanks = widest
    }

    /// Lanes the kernel gives each multi expert: the smallest power of two ≥ `maxRanks` (at least 2).
    public var groupWidth: Int {
        var g = 2
        while g < maxRanks { g *= 2 }
        return g
    }

    /// Number of multi-rank experts.
    public var multiCount: Int { multiExpert.count }

    /// Per-slot quotas [numSlots] from per-replica quotas aligned with `replicaSlots` (what the kernel writes).
    public static func slotQuotas(replicaQuotas: [Int32], placement p: Placement) -> [Int32] {
        precondition(replicaQuotas.count == p.numSlots, "one quota per replica")
        var out = [Int32](repeating: 0, count: p.numSlots)
        for (i, s) in p.replicaSlots.enumerated() { out[Int(s)] = replicaQuotas[i] }
        return out
    }
}

/// Device copies of a placement's CSR and its `SplitTables`, the inputs of `CUDAKernels.balancedSplit`.
public final class DeviceSplitTables {
    /// The placement these tables describe.
    public let placement: Placement
    /// The packed host tables.
    public let tables: SplitTables
    let replicaStart: DeviceArray<Int32>
    let replicaSlots: DeviceArray<Int32>
    let multiIndex: DeviceArray<Int32>
    let multiExpert: DeviceArray<Int32>
    let runStart: DeviceArray<Int32>
    let runReplica: DeviceArray<Int32>
    let runRank: DeviceArray<Int32>
    let runOwner: DeviceArray<Int32>
    let expertHome: DeviceArray<Int32>
    let rankStart: DeviceArray<Int32>
    let rankMulti: DeviceArray<Int32>
    /// The compiled `balanced_split` for this shape and group width (resolved once, so a launch is one driver call).
    let function: CUhandle?
    /// The one-warp kernel's packed tables, when the placement has at most `SplitWarpTables.maxMultiExperts` multi
    /// experts (nil otherwise: `balancedSplit` then runs the level-parallel kernel).
    public let warpTables: SplitWarpTables?
    let packed: DeviceArray<Int32>?
    /// The compiled `balanced_split_warp` for this shape (nil with `warpTables`).
    let warpFunction: CUhandle?

    /// Packs `placement`, uploads its tables to `gpu` and resolves the kernel for its shape and group width
    /// (compiled with NVRTC on first use in the process). Throws for shapes beyond the kernel's limits.
    public init(gpu: GPU, placement: Placement) throws {
        self.placement = placement
        tables = try SplitTables(placement: placement)
        replicaStart = try DeviceArray(gpu, placement.replicaStart)
        replicaSlots = try DeviceArray(gpu, placement.replicaSlots)
        multiIndex = try DeviceArray(gpu, tables.multiIndex)
        multiExpert = try DeviceArray(gpu, tables.multiExpert)
        runStart = try DeviceArray(gpu, tables.runStart)
        runReplica = try DeviceArray(gpu, tables.runReplica)
        runRank = try DeviceArray(gpu, tables.runRank)
        runOwner = try DeviceArray(gpu, tables.runOwner)
        expertHome = try DeviceArray(gpu, tables.expertHome)
        rankStart = try DeviceArray(gpu, tables.rankStart)
        rankMulti = try DeviceArray(gpu, tables.rankMulti)
        function = try CUDAKernels.splitFunction(gpu: gpu, placement: placement, groupWidth: tables.groupWidth)
        warpTables = SplitWarpTables(tables: tables, placement: placement)
        if let w = warpTables {
            packed = try DeviceArray(gpu, w.packed)
            warpFunction = try CUDAKernels.splitWarpFunction(gpu: gpu, placement: placement, tables: w)
        } else {
            packed = nil
            warpFunction = nil
        }
    }
}
