/// Mutable per-layer planning state shared by the packers and the local search.
///
/// Holds the slot → expert table being built, each slot's predicted load (its expert's load split evenly over the
/// expert's replicas) and the resulting rank and node loads. Buffers are allocated once and reused for every layer
/// of a `Planner.plan` call, so the hot loops index raw memory and never touch copy-on-write arrays.
final class PackingState {
    let numExperts: Int
    let numRanks: Int
    let slotsPerRank: Int
    let numSlots: Int
    let ranksPerNode: Int
    let numNodes: Int
    let allowSameRank: Bool
    /// Most replicas one expert may get.
    let replicaCap: Int

    /// Expert held by each slot, -1 when free, [S].
    let slotExpert: UnsafeMutableBufferPointer<Int32>
    /// Predicted tokens of each slot (its expert's load / replica count), [S].
    let slotWeight: UnsafeMutableBufferPointer<Double>
    /// Sum of slot weights per rank, [R].
    let rankLoad: UnsafeMutableBufferPointer<Double>
    /// Occupied slots per rank while packing, [R].
    let rankFill: UnsafeMutableBufferPointer<Int>
    /// Sum of rank loads per node, [N].
    let nodeLoad: UnsafeMutableBufferPointer<Double>
    /// Replicas per expert, [E].
    let count: UnsafeMutableBufferPointer<Int32>
    /// Expert loads of the layer being planned, [E].
    let load: UnsafeMutableBufferPointer<Double>
    /// Scratch: expert order / heap, [E].
    let order: UnsafeMutableBufferPointer<Int32>
    /// Scratch: ranks by load, [R].
    let rankOrder: UnsafeMutableBufferPointer<Int32>
    /// Node of each rank, [R] (a table, so hot loops do not divide).
    let rankNode: UnsafeMutableBufferPointer<Int32>
    /// Scratch: open ranks and their loads while packing, [R].
    let openList: UnsafeMutablePointer<OpenRank>
    /// Scratch: packed sort keys, [2 × S] (S ≥ E).
    let keys: UnsafeMutablePointer<UInt64>
    /// Experts ordered by load per replica, heaviest first, as `replicateOrdered` leaves them, [E].
    let expertOrder: UnsafeMutableBufferPointer<Int32>

    init(numExperts: Int, request: PlannerRequest) {
        self.numExperts = numExperts
        numRanks = request.topology.numRanks
        numSlots = request.numSlots
        slotsPerRank = request.numSlots / request.topology.numRanks
        numNodes = request.topology.numNodes
        ranksPerNode = request.topology.ranksPerNode
        allowSameRank = request.allowSameRankReplicas
        replicaCap = request.allowSameRankReplicas ? request.numSlots : request.topology.numRanks
        slotExpert = .allocate(capacity: numSlots)
        slotWeight = .allocate(capacity: numSlots)
        rankLoad = .allocate(capacity: numRanks)
        rankFill = .allocate(capacity: numRanks)
        nodeLoad = .allocate(capacity: numNodes)
        count = .allocate(capacity: numExperts)
        load = .allocate(capacity: numExperts)
        order = .allocate(capacity: numExperts)
        rankOrder = .allocate(capacity: numRanks)
        rankNode = .allocate(capacity: numRanks)
        openList = .allocate(capacity: numRanks)
        keys = .allocate(capacity: 2 * max(numSlots, numExperts))
        expertOrder = .allocate(capacity: numExperts)
        for r in 0..<numRanks { rankNode[r] = Int32(r / ranksPerNode) }
    }

    deinit {
        slotExpert.deallocate(); slotWeight.deallocate(); rankLoad.deallocate(); rankFill.deallocate()
        nodeLoad.deallocate(); count.deallocate(); load.deallocate(); order.deallocate(); rankOrder.deallocate()
        rankNode.deallocate(); keys.deallocate(); openList.deallocate(); expertOrder.deallocate()
    }

    /// Copies a layer's loads in and clears every slot.
    func reset(loads: [Double]) {
        loads.withUnsafeBufferPointer { reset(loads: $0) }
    }

    /// Copies a layer's loads in from raw memory and clears every slot.
    func reset(loads: UnsafeBufferPointer<Double>) {
        precondition(loads.count == numExperts)
        for e in 0..<numExperts { load[e] = loads[e]; count[e] = 1 }
        clearSlots()
    }

    /// Marks every slot free and zeroes rank and node loads.
    func clearSlots() {
        for s in 0..<numSlots { slotExpert[s] = -1; slotWeight[s] = 0 }
        for r in 0..<numRanks { rankLoad[r] = 0; rankFill[r] = 0 }
        for n in 0..<numNodes { nodeLoad[n] = 0 }
    }

    /// Loads `placement`'s table and recomputes the weights from the current loads.
    func adopt(_ placement: Placement) {
        for e in 0..<numExperts { count[e] = placement.replicaCount[e] }
        for s in 0..<numSlots { slotExpert[s] = placement.slotExpert[s] }
        for r in 0..<numRanks { rankFill[r] = slotsPerRank }
        recomputeWeights()
    }

    /// Recomputes every slot weight and the rank and node loads from `slotExpert`, `count` and `load`.
    func recomputeWeights() {
        for r in 0..<numRanks { rankLoad[r] = 0 }
        for s in 0..<numSlots {
            let e = Int(slotExpert[s])
            let w = e >= 0 ? load[e] / Double(count[e]) : 0
            slotWeight[s] = w
            rankLoad[s / slotsPerRank] += w
        }
        recomputeNodeLoads()
    }

    func recomputeNodeLoads() {
        for n in 0..<numNodes { nodeLoad[n] = 0 }
        for r in 0..<numRanks { nodeLoad[r / ranksPerNode] += rankLoad[r] }
    }

    /// Whether rank `rank` already holds expert `expert` (never true when same-rank replicas are allowed).
    @inline(__always)
    func blocks(rank: Int, expert: Int32) -> Bool {
        if allowSameRank { return false }
        let base = rank &* slotsPerRank
        for s in base..<(base &+ slotsPerRank) where slotExpert[s] == expert { return true }
        return false
    }

    /// Puts `expert` with weight `weight` into the free slot `slot`.
    @inline(__always)
    func put(expert: Int32, weight: Double, slot: Int) {
        put(expert: expert, weight: weight, slot: slot, rank: slot / slotsPerRank)
    }

    /// `put(expert:weight:slot:)` for a caller that knows the slot's rank.
    @inline(__always)
    func put(expert: Int32, weight: Double, slot: Int, rank r: Int) {
        slotExpert[slot] = expert
        slotWeight[slot] = weight
        rankLoad[r] += weight
        nodeLoad[Int(rankNode[r])] += weight
    }

    /// Exchanges the contents of slots `a` and `b` and updates the loads.
    @inline(__always)
    func swapSlots(_ a: Int, _ b: Int) {
        let ra = a / slotsPerRank, rb = b / slotsPerRank
        let d = slotWeight[a] - slotWeight[b]
        rankLoad[ra] -= d; rankLoad[rb] += d
        nodeLoad[Int(rankNode[ra])] -= d; nodeLoad[Int(rankNode[rb])] += d
        let e = slotExpert[a]; slotExpert[a] = slotExpert[b]; slotExpert[b] = e
        let w = slotWeight[a]; slotWeight[a] = slotWeight[b]; slotWeight[b] = w
    }

    /// Largest rank load.
    var maxRankLoad: Double {
        var m = -Double.infinity
        for r in 0..<numRanks where rankLoad[r] > m { m = rankLoad[r] }
        return m
    }

    /// Lower bound on the max rank load of any placement with the current replica counts:
    /// max(mean rank load, heaviest replica).
    var lowerBound: Double {
        var total = 0.0, heaviest = 0.0
        for e in 0..<numExperts {
            total += load[e]
            heaviest = max(heaviest, load[e] / Double(count[e]))
        }
        return max(total / Double(numRanks), heaviest)
    }

    /// Loads `loads`, runs `plan` on this state and returns the finished placement: the shared shape of every
    /// planner's `planLayer`.
    func placement(loads: [Double], layer: Int?, _ plan: (PackingState) throws -> Void) throws -> Placement {
        reset(loads: loads)
        try plan(self)
        return try makePlacement(layer: layer)
    }

    /// The finished placement (validated).
    func makePlacement(layer: Int?) throws -> Placement {
        try Placement(
            slotExpert: Array(UnsafeBufferPointer(slotExpert)), numExperts: numExperts, numRanks: numRanks,
            allowSameRankReplicas: allowSameRank, layer: layer)
    }
}

/// A rank and its load, as the packer's sorted list of open ranks holds them.
struct OpenRank {
    var load: Double
    var rank: Int32
}
