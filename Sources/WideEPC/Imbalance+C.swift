import WideEPCore

/// Per-layer load imbalance of a placement under given loads (DESIGN.md §8).
///
/// Shapes: `loads [num_layers, num_experts]` float64, `phy2log [num_layers, num_replicas]` int64,
/// `ratio [num_layers]` float64 output: (max − mean) / mean of GPU loads; `balancedness [num_layers]` float64
/// output (nullable): mean / max. `split` chooses how an expert's load reaches its replicas: "even" (load / replica
/// count, DeepSeek's model; NULL means "even") or "balanced" (the ReplicaSplit; loads must be whole token counts).
@_cdecl("wideep_imbalance")
public func wideep_imbalance(
    _ loads: UnsafePointer<Double>?, _ numLayers: Int64, _ numExperts: Int64, _ phy2log: UnsafePointer<Int64>?,
    _ numReplicas: Int64, _ numGPUs: Int64, _ split: UnsafePointer<CChar>?,
    _ ratio: UnsafeMutablePointer<Double>?, _ balancedness: UnsafeMutablePointer<Double>?
) -> Int32 {
    withABIStatus("wideep_imbalance") {
        let loadsPointer = try ABIArguments.required(loads, "loads")
        let phy2logPointer = try ABIArguments.required(phy2log, "phy2log")
        let ratioOut = try ABIArguments.required(ratio, "ratio")
        let layers = try ABIArguments.dimension(numLayers, "num_layers")
        let experts = try ABIArguments.dimension(numExperts, "num_experts")
        let slots = try ABIArguments.dimension(numReplicas, "num_replicas")
        let ranks = try ABIArguments.dimension(numGPUs, "num_gpus")
        _ = try ABIArguments.product(layers, experts, "loads")
        _ = try ABIArguments.product(layers, slots, "phy2log")
        guard slots % ranks == 0 else {
            throw ABIError.invalid("num_replicas \(slots) is not a multiple of num_gpus \(ranks)")
        }
        let splitPolicy = try SplitArguments.policy(ABIArguments.name(split, default: "even"))
        let rows = try ABIArguments.loads(loadsPointer, layers: layers, experts: experts)
        var ratios = [Double](repeating: 0, count: layers)
        var balanced = [Double](repeating: 0, count: layers)
        for l in 0..<layers {
            let placement = try ABIArguments.placement(
                UnsafeBufferPointer(start: phy2logPointer + l * slots, count: slots), numExperts: experts,
                numRanks: ranks, allowSameRank: true, layer: l, name: "phy2log")
            let rankLoads: [Double]
            switch splitPolicy {
            case .even:
                rankLoads = placement.rankLoads(expertLoads: rows[l])
            case .balanced:
                var counts = [Int](repeating: 0, count: experts)
                for (e, x) in rows[l].enumerated() {
                    guard x == x.rounded() && x <= Double(Int32.max) else {
                        throw ABIError.invalid(
                            "loads[\(l)][\(e)] = \(x); split \"balanced\" needs whole token counts "
                                + "in 0...\(Int32.max)")
                    }
                    counts[e] = Int(x)
                }
                let quotas = ReplicaSplit.quotas(expertCounts: counts, placement: placement, policy: .balanced)
                var perRank = [Double](repeating: 0, count: ranks)
                for s in 0..<slots { perRank[placement.rank(ofSlot: s)] += Double(quotas[s]) }
                rankLoads = perRank
            }
            ratios[l] = Imbalance.ratio(rankLoads)
            balanced[l] = Imbalance.balancedness(rankLoads)
        }
        for l in 0..<layers {
            ratioOut[l] = ratios[l]
            balancedness?[l] = balanced[l]
        }
    }
}
