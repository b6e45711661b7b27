import Foundation
import CUDADriver
import WideEPCore

extension CUDASelftest {
    /// Launches per timing sample of the split (their mean is the per-layer time).
    static let splitLaunchesPerSample = 200
    /// Tolerance of the timing row: reported, never gated (timings vary with the card and its load; the ≤ 10 µs
    /// target and the measured value are in docs/PERFORMANCE.md). Finite so `--json` can encode it.
    static let untimedTolerance = Double.greatestFiniteMagnitude

    /// A random valid placement of `experts` over `ranks` × `slotsPerRank` slots: every expert once, the remaining
    /// slots replicas of random experts (hot ids more often), shuffled over the ranks.
    mutating func splitPlacement(experts e: Int, ranks: Int, slotsPerRank p: Int, sameRank: Bool) throws -> Placement {
        for _ in 0..<1000 {
            var table = (0..<e).map { Int32($0) }
            while table.count < ranks * p {
                table.append(Int32(min(e - 1, Int(Float(e) * rng.unitFloat() * rng.unitFloat()))))
            }
            table.shuffle(using: &rng)
            if let pl = try? Placement(slotExpert: table, numExperts: e, numRanks: ranks, allowSameRankReplicas: sameRank) {
                return pl
            }
        }
        throw CUDAError.invalidRequest("selftest: no valid random placement for E=\(e) ranks=\(ranks) slots/rank=\(p)")
    }

    /// Skewed per-expert counts (a few hot experts, about one in eight empty), never all zero.
    mutating func splitCounts(experts e: Int, tokens: Int) -> [Int32] {
        var c = (0..<e).map { _ -> Int32 in
            if rng.next() % 8 == 0 { return 0 }
            let u = rng.unitFloat()
            return Int32(Float(tokens) * u * u * u * u)
        }
        c[Int(rng.next() % UInt64(e))] += Int32(tokens)
        return c
    }

    /// The GPU balanced split against Core's CPU split on several random shapes: conservation, identical quotas,
    /// the max rank load ratio, and the time per launch on the DeepSeek shape (E 256, EP 32, 288 slots).
    mutating func balancedSplit() throws -> [SelftestRow] {
        let shapes: [(e: Int, r: Int, p: Int, sameRank: Bool, timed: Bool)] = [
            (256, 32, 9, false, true), (64, 8, 9, false, false), (256, 8, 40, true, false), (16, 4, 6, true, false),
        ]
        let kern = CUDAKernels(gpu: gpu, config: .deepseekV3Mini)
        var rows: [SelftestRow] = []
        for s in shapes {
            let pl = try splitPlacement(experts: s.e, ranks: s.r, slotsPerRank: s.p, sameRank: s.sameRank)
            let tables = try DeviceSplitTables(gpu: gpu, placement: pl)
            let quotas = try DeviceArray<Int32>(gpu, count: pl.numSlots)
            var bad = 0, diff = 0
            var worst = 0.0, gpuPeak = 0.0, cpuPeak = 0.0
            for trial in 0..<8 {
                let counts = splitCounts(experts: s.e, tokens: trial % 2 == 0 ? 4096 : 200)
                let dc = try DeviceArray(gpu, counts)
                try quotas.poison(gpu)
                try kern.balancedSplit(counts: dc, tables: tables, quotas: quotas)
                let got = try quotas.download(gpu)
                for e in 0..<s.e {
                    let a = Int(pl.replicaStart[e]), b = Int(pl.replicaStart[e + 1])
                    if got[a..<b].contains(where: { $0 < 0 }) || got[a..<b].reduce(0, +) != counts[e] { bad += 1 }
                }
                let perSlot = SplitTables.slotQuotas(replicaQuotas: got, placement: pl)
                let ref = ReplicaSplit.quotas(expertCounts: counts.map(Int.init), placement: pl, policy: .balanced)
                diff += zip(perSlot, ref).filter { Int($0.0) != $0.1 }.count
                let g = ReplicaSplit.rankLoads(quotas: perSlot.map(Int.init), placement: pl).max() ?? 0
                let c = ReplicaSplit.rankLoads(quotas: ref, placement: pl).max() ?? 0
                if g / max(c, 1) >= worst { worst = g / max(c, 1); gpuPeak = g; cpuPeak = c }
            }
            let shape = "E=\(s.e) EP=\(s.r) slots=\(pl.numSlots) multi=\(tables.tables.multiCount)"
            rows.append(SelftestRow(name: "balanced_split conservation", shape: shape + " ×8", metric: "mismatches",
                                    value: Double(bad), tolerance: 0))
            rows.append(SelftestRow(name: "balanced_split vs Core quotas", shape: shape + " ×8", metric: "mismatches",
                                    value: Double(diff), tolerance: 0))
            rows.append(SelftestRow(
                name: "balanced_split max rank load / CPU", shape: shape + " worst: \(Int(gpuPeak)) vs \(Int(cpuPeak))",
                metric: "ratio", value: worst, tolerance: 1.01))
            if s.timed { rows.append(try splitTime(kern: kern, placement: pl, tables: tables, quotas: quotas, shape: shape)) }
        }
        return rows
    }

    /// Mean kernel time per launch (CUDA events around back-to-back launches, so launch gaps count) next to Core's
    /// allocation-free CPU split on the same counts; informational (see `untimedTolerance`).
    mutating func splitTime(
        kern: CUDAKernels, placement pl: Placement, tables: DeviceSplitTables, quotas: DeviceArray<Int32>,
        shape: String
    ) throws -> SelftestRow {
        let counts = splitCounts(experts: pl.numExperts, tokens: 4096)
        let dc = try DeviceArray(gpu, counts)
        let n = Self.splitLaunchesPerSample
        let ms = try gpu.time(warmup: 2, repeats: 11) {
            for _ in 0..<n { try kern.balancedSplit(counts: dc, tables: tables, quotas: quotas) }
        }
        let us = ms * 1000 / Double(n)
        var scratch = ReplicaSplit.Scratch()
        var out = [Int32](repeating: 0, count: pl.numSlots)
        let reps = 2000
        let clock = ContinuousClock()
        let t = clock.measure {
            counts.withUnsafeBufferPointer { c in
                out.withUnsafeMutableBufferPointer { o in
                    for _ in 0..<reps {
                        ReplicaSplit.quotas(expertCounts: c, placement: pl, policy: .balanced, scratch: &scratch, into: o)
                    }
                }
            }
        }
        let cpuUs = Double(t.components.attoseconds) / 1e12 / Double(reps) + Double(t.components.seconds) * 1e6 / Double(reps)
        let ratio = cpuUs / max(us, 1e-9)
        return SelftestRow(
            name: "balanced_split time", shape: shape + String(format: " (CPU split %.2f µs, GPU/CPU speedup %.2f×)", cpuUs, ratio),
            metric: "µs/layer", value: us, tolerance: Self.untimedTolerance)
    }
}
