/// DeepSeek's EPLB policy (deepseek-ai/EPLB `rebalance_experts`), re-derived from its description.
///
/// Hierarchical, when the expert groups divide evenly over the nodes (groups % nodes == 0):
/// 1. pack expert groups onto nodes, heaviest group first onto the lightest node with room, with the same number of
///    groups on every node (so a group-limited token reaches few nodes);
/// 2. inside each node, replicate its experts into the node's S/N slots by the largest load per replica;
/// 3. pack the node's replicas onto its GPUs, heaviest first onto the lightest GPU with room.
///
/// Otherwise the global policy: replicate over all S slots, then pack onto all GPUs (the hierarchical policy with
/// one group and one node). Unlike the Python original, packing keeps replicas of one expert on distinct ranks
/// unless the request allows otherwise, with a repair exchange when the plain greedy runs out of ranks; the global
/// policy is also used when the per-node replica cap cannot fit a node's slots. With same-rank replicas allowed,
/// `exactSlotTable` (DeepSeekPlanner+Exact.swift) follows the original exactly.
enum DeepSeekPlanner {
    static func planLayer(loads: [Double], request: PlannerRequest, layer: Int?, state: PackingState) throws
        -> Placement
    {
        try state.placement(loads: loads, layer: layer) { try plan(request: request, layer: layer, state: $0) }
    }

    /// Plans the layer loaded in `state` (by `reset(loads:)`) into its slot table.
    static func plan(request: PlannerRequest, layer: Int?, state: PackingState) throws {
        let e = state.numExperts
        let groups = request.numExpertGroups
        let nodes = state.numNodes
        if state.allowSameRank {
            // DeepSeek's own semantics (it never separates replicas by rank): reproduce it exactly, ties included.
            exactPlan(state: state, groups: groups)
            return
        }
        let perNodeSlots = state.numSlots / nodes
        let perNodeExperts = groups % nodes == 0 ? e / nodes : 0
        let nodeCap = state.allowSameRank ? perNodeSlots : state.ranksPerNode
        if nodes > 1 && groups % nodes == 0 && perNodeSlots <= perNodeExperts * nodeCap {
            try hierarchical(request: request, layer: layer, state: state, nodeCap: nodeCap)
        } else {
            state.replicateMinMax(slots: state.numSlots, cap: state.replicaCap)
            let order = state.sortedByReplicaWeight(0..<Int32(e))
            try state.packLPT(experts: order, ranks: 0..<state.numRanks, layer: layer)
        }
    }

    private static func hierarchical(request: PlannerRequest, layer: Int?, state: PackingState, nodeCap: Int) throws {
        let e = state.numExperts
        let groups = request.numExpertGroups
        let nodes = state.numNodes
        let groupSize = e / groups
        let groupsPerNode = groups / nodes
        // Step 1: groups → nodes, balanced packing with equal counts.
        var groupLoad = [Double](repeating: 0, count: groups)
        for x in 0..<e { groupLoad[x / groupSize] += state.load[x] }
        let groupOrder = (0..<groups).sorted { groupLoad[$0] > groupLoad[$1] || (groupLoad[$0] == groupLoad[$1] && $0 < $1) }
        var nodeGroups = [[Int]](repeating: [], count: nodes)
        var nodeSum = [Double](repeating: 0, count: nodes)
        for g in groupOrder {
            var best = -1
            for n in 0..<nodes where nodeGroups[n].count < groupsPerNode {
                if best < 0 || nodeSum[n] < nodeSum[best] { best = n }
            }
            nodeGroups[best].append(g)
            nodeSum[best] += groupLoad[g]
        }
        // Steps 2 and 3 per node: replicate into the node's slots, then pack onto its ranks.
        let perNodeSlots = state.numSlots / nodes
        for n in 0..<nodes {
            var experts: [Int32] = []
            experts.reserveCapacity(e / nodes)
            for g in nodeGroups[n].sorted() {
                for x in (g * groupSize)..<((g + 1) * groupSize) { experts.append(Int32(x)) }
            }
            var heap = experts
            heap.withUnsafeMutableBufferPointer {
                state.replicateMinMax(experts: $0, slots: perNodeSlots, cap: nodeCap)
            }
            let order = state.sortedByReplicaWeight(experts)
            let ranks = (n * state.ranksPerNode)..<((n + 1) * state.ranksPerNode)
            try state.packLPT(experts: order, ranks: ranks, layer: layer)
        }
    }
}
