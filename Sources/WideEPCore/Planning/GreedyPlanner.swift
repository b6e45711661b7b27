/// TensorRT-LLM's greedy EPLB policy.
///
/// Replication: each extra slot goes to the expert with the highest load per replica. Packing: replicas in
/// decreasing load order (longest processing time first), each onto the least-loaded rank that still has a free slot
/// and, unless allowed, no replica of the same expert.
enum GreedyPlanner {
    static func planLayer(loads: [Double], request: PlannerRequest, layer: Int?) throws -> Placement {
        let e = loads.count
        let counts = replicate(loads: loads, numSlots: request.numSlots, maxPerExpert: request.allowSameRankReplicas
            ? request.numSlots : request.topology.numRanks)
        let slotExpert = try pack(
            loads: loads, counts: counts, numRanks: request.topology.numRanks,
            slotsPerRank: request.numSlots / request.topology.numRanks,
            allowSameRank: request.allowSameRankReplicas, layer: layer)
        return try Placement(
            slotExpert: slotExpert, numExperts: e, numRanks: request.topology.numRanks,
            allowSameRankReplicas: request.allowSameRankReplicas, layer: layer)
    }

    /// Replica counts: one each, then every extra slot to the expert with the largest load per replica.
    static func replicate(loads: [Double], numSlots: Int, maxPerExpert: Int) -> [Int] {
        let e = loads.count
        var counts = [Int](repeating: 1, count: e)
        for _ in 0..<(numSlots - e) {
            var best = -1
            var bestValue = -Double.infinity
            for i in 0..<e where counts[i] < maxPerExpert {
                let v = loads[i] / Double(counts[i])
                if v > bestValue { bestValue = v; best = i }
            }
            counts[best] += 1
        }
        return counts
    }

    /// Longest-processing-time packing of replicas onto ranks; returns the slot → expert table.
    static func pack(
        loads: [Double], counts: [Int], numRanks: Int, slotsPerRank: Int, allowSameRank: Bool, layer: Int?
    ) throws -> [Int32] {
        var items: [(load: Double, expert: Int)] = []
        items.reserveCapacity(numRanks * slotsPerRank)
        for (ex, c) in counts.enumerated() {
            for _ in 0..<c { items.append((loads[ex] / Double(c), ex)) }
        }
        // Stable order: heavier first, then lower expert id.
        items.sort { $0.load > $1.load || ($0.load == $1.load && $0.expert < $1.expert) }
        var rankLoad = [Double](repeating: 0, count: numRanks)
        var rankFill = [Int](repeating: 0, count: numRanks)
        var lastRankOf = [[Int]](repeating: [], count: loads.count)
        var slotExpert = [Int32](repeating: -1, count: numRanks * slotsPerRank)
        for item in items {
            var best = -1
            for r in 0..<numRanks where rankFill[r] < slotsPerRank {
                if !allowSameRank && lastRankOf[item.expert].contains(r) { continue }
                if best < 0 || rankLoad[r] < rankLoad[best] { best = r }
            }
            guard best >= 0 else {
                throw PlacementError.invalidArgument(
                    (layer.map { "layer \($0): " } ?? "")
                        + "cannot place expert \(item.expert)'s replicas on distinct ranks with free slots")
            }
            slotExpert[best * slotsPerRank + rankFill[best]] = Int32(item.expert)
            rankFill[best] += 1
            rankLoad[best] += item.load
            lastRankOf[item.expert].append(best)
        }
        return slotExpert
    }
}
