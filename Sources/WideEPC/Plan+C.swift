import WideEPCore

/// Plans expert placements for every layer (DeepSeek EPLB's `rebalance_experts` contract).
///
/// Shapes (row-major, C-contiguous): `loads [num_layers, num_experts]` float64; `current_phy2log` (nullable)
/// and `phy2log [num_layers, num_replicas]` int64; `log2phy [num_layers, num_experts, max_replicas]` int64,
/// ascending physical ids padded with -1 (nullable); `logcnt [num_layers, num_experts]` int64 (nullable).
/// Returns an `ABIStatus` raw value; see include/wideep.h.
@_cdecl("wideep_plan")
public func wideep_plan(
    _ loads: UnsafePointer<Double>?, _ numLayers: Int64, _ numExperts: Int64, _ policy: UnsafePointer<CChar>?,
    _ numReplicas: Int64, _ numGroups: Int64, _ numNodes: Int64, _ numGPUs: Int64, _ allowSameRank: Int32,
    _ currentPhy2Log: UnsafePointer<Int64>?, _ maxReplicas: Int64,
    _ phy2log: UnsafeMutablePointer<Int64>?, _ log2phy: UnsafeMutablePointer<Int64>?,
    _ logcnt: UnsafeMutablePointer<Int64>?
) -> Int32 {
    withABIStatus("wideep_plan") {
        let loadsPointer = try ABIArguments.required(loads, "loads")
        let phy2logOut = try ABIArguments.required(phy2log, "phy2log")
        let layers = try ABIArguments.dimension(numLayers, "num_layers")
        let experts = try ABIArguments.dimension(numExperts, "num_experts")
        let slots = try ABIArguments.dimension(numReplicas, "num_replicas")
        let groups = try ABIArguments.dimension(numGroups, "num_groups")
        let nodes = try ABIArguments.dimension(numNodes, "num_nodes")
        let ranks = try ABIArguments.dimension(numGPUs, "num_gpus")
        _ = try ABIArguments.product(layers, experts, "loads")
        _ = try ABIArguments.product(layers, slots, "phy2log")
        let policyValue = try ABIArguments.plannerPolicy(ABIArguments.name(policy, default: "balanced"))
        guard ranks % nodes == 0 else {
            throw ABIError.invalid("num_gpus \(ranks) is not a multiple of num_nodes \(nodes)")
        }
        guard slots % ranks == 0 else {
            throw ABIError.invalid("num_replicas \(slots) is not a multiple of num_gpus \(ranks)")
        }
        guard slots >= experts else {
            throw ABIError.invalid("num_replicas \(slots) is smaller than num_experts \(experts); need at least \(experts)")
        }
        guard policyValue != .none || slots == experts else {
            throw ABIError.invalid("policy none needs num_replicas == num_experts (\(experts)), got \(slots)")
        }
        guard experts % groups == 0 else {
            throw ABIError.invalid("num_experts \(experts) is not a multiple of num_groups \(groups)")
        }
        if log2phy != nil {
            guard maxReplicas >= 1 else {
                throw ABIError.invalid("max_replicas must be >= 1 when log2phy is given, got \(maxReplicas)")
            }
            _ = try ABIArguments.product(try ABIArguments.product(layers, experts, "log2phy"),
                                         Int(min(maxReplicas, ABIArguments.maxDimension)), "log2phy")
        }
        let sameRank = allowSameRank != 0
        let request = PlannerRequest(
            numSlots: slots, topology: try Topology(numRanks: ranks, numNodes: nodes), policy: policyValue,
            numExpertGroups: groups, allowSameRankReplicas: sameRank)
        try request.validate(numExperts: experts)

        let loadRows = try ABIArguments.loads(loadsPointer, layers: layers, experts: experts)
        var current: [Placement]? = nil
        if let currentPhy2Log {
            current = try (0..<layers).map { l in
                try ABIArguments.placement(
                    UnsafeBufferPointer(start: currentPhy2Log + l * slots, count: slots), numExperts: experts,
                    numRanks: ranks, allowSameRank: sameRank, layer: l, name: "current_phy2log")
            }
        }
        let placements = try LayerParallel.plan(loads: loadRows, request: request, current: current)
        try PlanOutput.write(
            placements, layers: layers, experts: experts, slots: slots, maxReplicas: Int(maxReplicas),
            phy2log: phy2logOut, log2phy: log2phy, logcnt: logcnt)
    }
}

/// Writes planner results into the caller's DeepSeek-layout buffers.
enum PlanOutput {
    static func write(
        _ placements: [Placement], layers: Int, experts: Int, slots: Int, maxReplicas: Int,
        phy2log: UnsafeMutablePointer<Int64>, log2phy: UnsafeMutablePointer<Int64>?,
        logcnt: UnsafeMutablePointer<Int64>?
    ) throws {
        guard placements.count == layers,
            placements.allSatisfy({ $0.numSlots == slots && $0.numExperts == experts })
        else {
            throw ABIError(
                status: .internalError,
                description: "planner returned \(placements.count) placements that do not match "
                    + "\(layers) layers × \(slots) slots × \(experts) experts")
        }
        if log2phy != nil {
            // Check the capacity before writing anything, so a too-small buffer leaves every output untouched.
            let widest = placements.map { Int($0.replicaCount.max() ?? 0) }.max() ?? 0
            guard widest <= maxReplicas else {
                throw ABIError.capacity(
                    "an expert has \(widest) replicas but max_replicas is \(maxReplicas); "
                        + "pass max_replicas >= \(widest) (num_replicas - num_experts + 1 always suffices)")
            }
        }
        for (l, p) in placements.enumerated() {
            let row = phy2log + l * slots
            for s in 0..<slots { row[s] = Int64(p.slotExpert[s]) }
            if let logcnt {
                for e in 0..<experts { logcnt[l * experts + e] = Int64(p.replicaCount[e]) }
            }
            if let log2phy {
                for e in 0..<experts {
                    let out = log2phy + (l * experts + e) * maxReplicas
                    var k = 0
                    for slot in p.replicas(of: e) { out[k] = Int64(slot); k += 1 }
                    while k < maxReplicas { out[k] = -1; k += 1 }
                }
            }
        }
    }
}
