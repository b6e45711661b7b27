import CUDADriver
import WideEPCore
import WideEPRuntime

extension CUDASelftest {
    /// The runtime's `map_slots_local` (through `CUDAMoEKernels.mapToSlots`, the launch `wide-ep run` uses) against
    /// Core's `ReplicaSplit.mapTokens` on every rank of random multi-rank batches (EP 8 with same-rank replicas and
    /// EP 32 without; skewed routing, empty experts and one empty rank), plus the quota check: summed over all
    /// ranks' GPU slots, every replica receives exactly its quota.
    mutating func localFirstMap() throws -> [SelftestRow] {
        let k = try CUDAMoEKernels(gpu: gpu)
        var rows: [SelftestRow] = []
        for (e, r, p, sameRank, topK) in [(256, 8, 40, true, 8), (256, 32, 9, false, 8), (64, 8, 9, true, 6)] {
            let pl = try SplitCases.hotPlacement(experts: e, ranks: r, slotsPerRank: p, sameRank: sameRank, rng: &rng)
            let routed: [[Int32]] = (0..<r).map { rank in
                let tokens = rank == 1 ? 0 : 40 + Int(rng.next() % 300)
                return (0..<tokens).flatMap { _ -> [Int32] in
                    var picked: [Int32] = []
                    while picked.count < topK {
                        let x = Int32(min(e - 1, Int(Float(e) * rng.unitFloat() * rng.unitFloat())))
                        if !picked.contains(x) { picked.append(x) }
                    }
                    return picked
                }
            }
            var counts = [Int32](repeating: 0, count: r * e), totals = [Int](repeating: 0, count: e)
            for (s, list) in routed.enumerated() {
                for x in list { counts[s * e + Int(x)] += 1; totals[Int(x)] += 1 }
            }
            let quotas = ReplicaSplit.quotas(expertCounts: totals, placement: pl, policy: .balanced).map(Int32.init)
            var mismatches = 0.0, received = [Int32](repeating: 0, count: pl.numSlots), pairs = 0
            for rank in 0..<r {
                let split = SlotSplit(placement: pl, quotas: quotas, allCounts: counts, rank: rank)
                let n = routed[rank].count
                pairs += n
                let xb = try k.allocate(.int32, count: n), sb = try k.allocate(.int32, count: n)
                try routed[rank].withUnsafeBytes { try k.upload($0, to: xb, offset: 0) }
                try sb.storage.poison(gpu)
                try k.mapToSlots(experts: xb, tokens: n / topK, topK: topK, split: split, slots: sb)
                var got = [Int32](repeating: 0, count: n)
                try got.withUnsafeMutableBytes { try k.download(sb, offset: 0, into: $0) }
                let ref = ReplicaSplit.mapTokens(experts: routed[rank], map: split.map, placement: pl)
                mismatches += Double(zip(got, ref).filter { $0 != $1 }.count)
                for s in got where s >= 0 && Int(s) < pl.numSlots { received[Int(s)] += 1 }
            }
            let shape = "EP\(r) E=\(e) K=\(topK) slots=\(pl.numSlots)\(sameRank ? " same-rank" : "") pairs=\(pairs)"
            rows.append(SelftestRow(name: "map_slots_local slot vs Core", shape: shape, metric: "mismatches",
                                    value: mismatches, tolerance: 0))
            rows.append(SelftestRow(name: "map_slots_local quota", shape: shape, metric: "mismatches",
                                    value: Self.mismatches(received, quotas), tolerance: 0))
        }
        return rows
    }
}
