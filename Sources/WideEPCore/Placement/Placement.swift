/// Where each logical expert lives in one layer: a slot → expert table and its CSR inverse.
///
/// Global slot `s = rank × slotsPerRank + local`. Every expert has at least one replica. Two replicas of one expert
/// share a rank only when the placement was built with `allowSameRankReplicas`.
public struct Placement: Equatable, Hashable, Sendable, Codable {
    /// Logical experts (E).
    public let numExperts: Int
    /// EP ranks (R).
    public let numRanks: Int
    /// Slots on each rank (S / R).
    public let slotsPerRank: Int
    /// The logical expert held by each global slot, [numSlots].
    public let slotExpert: [Int32]
    /// Replicas of each expert, [E].
    public let replicaCount: [Int32]
    /// Start of each expert's run in `replicaSlots`, [E + 1] (the last entry is numSlots).
    public let replicaStart: [Int32]
    /// Global slots grouped by expert, ascending within each expert, [numSlots].
    public let replicaSlots: [Int32]

    /// Total slots (S = R × slotsPerRank).
    public var numSlots: Int { slotExpert.count }

    /// Builds and validates a placement from its slot → expert table.
    ///
    /// - Throws: `PlacementError` when the slot count is not a multiple of `numRanks`, an id is out of range, an
    ///   expert has no replica, or (unless allowed) one rank holds two replicas of an expert.
    public init(
        slotExpert: [Int32], numExperts: Int, numRanks: Int, allowSameRankReplicas: Bool = false, layer: Int? = nil
    ) throws {
        try Placement.validate(
            slotExpert: slotExpert, numExperts: numExperts, numRanks: numRanks,
            allowSameRankReplicas: allowSameRankReplicas, layer: layer)
        self.init(unchecked: slotExpert, numExperts: numExperts, numRanks: numRanks)
    }

    /// Builds the CSR inverse without validation; callers have already validated `slotExpert`.
    init(unchecked slotExpert: [Int32], numExperts: Int, numRanks: Int) {
        self.numExperts = numExperts
        self.numRanks = numRanks
        self.slotsPerRank = slotExpert.count / numRanks
        self.slotExpert = slotExpert
        var count = [Int32](repeating: 0, count: numExperts)
        for e in slotExpert { count[Int(e)] += 1 }
        var start = [Int32](repeating: 0, count: numExperts + 1)
        for e in 0..<numExperts { start[e + 1] = start[e] + count[e] }
        var fill = start
        var slots = [Int32](repeating: 0, count: slotExpert.count)
        for (s, e) in slotExpert.enumerated() {
            slots[Int(fill[Int(e)])] = Int32(s)
            fill[Int(e)] += 1
        }
        self.replicaCount = count
        self.replicaStart = start
        self.replicaSlots = slots
    }

    /// The identity placement: expert e in slot e, contiguous blocks of E / R experts per rank (numSlots == E).
    public static func identity(numExperts: Int, numRanks: Int) throws -> Placement {
        try Placement(slotExpert: (0..<numExperts).map { Int32($0) }, numExperts: numExperts, numRanks: numRanks)
    }

    /// The rank that owns global slot `slot`.
    @inline(__always)
    public func rank(ofSlot slot: Int) -> Int { slot / slotsPerRank }

    /// Global slots holding expert `expert`, ascending.
    public func replicas(of expert: Int) -> ArraySlice<Int32> {
        replicaSlots[Int(replicaStart[expert])..<Int(replicaStart[expert + 1])]
    }

    /// Slot → expert entries of rank `rank`, [slotsPerRank].
    public func slots(ofRank rank: Int) -> ArraySlice<Int32> {
        slotExpert[rank * slotsPerRank..<(rank + 1) * slotsPerRank]
    }

    /// Number of global slots whose expert differs between `self` and `other` (the slot rewrites of a migration).
    public func moves(to other: Placement) -> Int {
        precondition(numSlots == other.numSlots)
        var n = 0
        for s in 0..<numSlots where slotExpert[s] != other.slotExpert[s] { n += 1 }
        return n
    }

    /// Rank loads when each expert's load is split evenly over its replicas, [R].
    public func rankLoads<C: Collection>(expertLoads: C) -> [Double] where C.Element == Double, C.Index == Int {
        var loads = [Double](repeating: 0, count: numRanks)
        for s in 0..<numSlots {
            let e = Int(slotExpert[s])
            loads[s / slotsPerRank] += expertLoads[expertLoads.startIndex + e] / Double(replicaCount[e])
        }
        return loads
    }
}
