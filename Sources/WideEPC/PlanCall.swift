import WideEPCore

/// The checked arguments of a planning call (`wideep_plan`, `wideep_rebalance_experts`): sizes, policy, request,
/// loads (finite and >= 0) and the optional placement in use.
struct PlanCall {
    let loads: UnsafePointer<Double>
    /// Output `[layers, num_replicas]` rows.
    let phy2log: UnsafeMutablePointer<Int64>
    let layers: Int
    let experts: Int
    let request: PlannerRequest
    /// The placement in use per layer (migration-aware re-planning), or nil.
    let current: [Placement]?

    /// Checks every argument in the order the C ABI documents (pointers, sizes, policy, request, loads, current).
    init(
        loads: UnsafePointer<Double>?, phy2log: UnsafeMutablePointer<Int64>?, numLayers: Int64, numExperts: Int64,
        policy: UnsafePointer<CChar>?, numReplicas: Int64, numGroups: Int64, numNodes: Int64, numGPUs: Int64,
        allowSameRank: Int32, currentPhy2Log: UnsafePointer<Int64>?
    ) throws {
        let loadsPointer = try ABIArguments.required(loads, "loads")
        self.phy2log = try ABIArguments.required(phy2log, "phy2log")
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
        let sameRank = allowSameRank != 0
        let request = PlannerRequest(
            numSlots: slots, topology: try Topology(numRanks: ranks, numNodes: nodes), policy: policyValue,
            numExpertGroups: groups, allowSameRankReplicas: sameRank)
        try request.validate(numExperts: experts)
        try ABIArguments.checkLoads(loadsPointer, layers: layers, experts: experts)
        var current: [Placement]? = nil
        if let currentPhy2Log {
            current = try (0..<layers).map { l in
                try ABIArguments.placement(
                    UnsafeBufferPointer(start: currentPhy2Log + l * slots, count: slots), numExperts: experts,
                    numRanks: ranks, allowSameRank: sameRank, layer: l, name: "current_phy2log")
            }
        }
        self.loads = loadsPointer
        self.layers = layers
        self.experts = experts
        self.request = request
        self.current = current
    }

    /// Plans every layer into `phy2log [layers, S]` and `logcnt [layers, E]` (nullable), then, with an allocator,
    /// fills the `[layers, E, X]` log2phy buffer it returns for X = the largest replica count.
    func plan(
        phy2log: UnsafeMutablePointer<Int64>, logcnt: UnsafeMutablePointer<Int64>?,
        allocateLog2Phy: ((Int) throws -> UnsafeMutablePointer<Int64>)? = nil
    ) throws {
        try LayerParallel.plan(
            loads: loads, layers: layers, numExperts: experts, request: request, current: current, phy2log: phy2log,
            logcnt: logcnt, allocateLog2Phy: allocateLog2Phy)
    }
}
