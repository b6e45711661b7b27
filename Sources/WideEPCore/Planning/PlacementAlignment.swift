/// Reorders a freshly planned placement to keep as many slots as possible unchanged from the current one.
///
/// Ranks are interchangeable inside a node and slots are interchangeable inside a rank, so this changes no rank's
/// set of experts (and no load), only where they sit: each new rank's contents go to the old rank of the same node
/// that shares the most experts with it (greedy, largest overlap first), and inside a rank every expert that was
/// already there keeps its old local slot.
enum PlacementAlignment {
    static func align(_ planned: Placement, to current: Placement, topology: Topology) throws -> Placement {
        let r = planned.numRanks, p = planned.slotsPerRank, rpn = topology.ranksPerNode
        var target = [Int](repeating: -1, count: r)  // new rank → old rank
        for node in 0..<topology.numNodes {
            let ranks = (node * rpn)..<((node + 1) * rpn)
            var pairs: [(overlap: Int, a: Int, b: Int)] = []
            pairs.reserveCapacity(rpn * rpn)
            for a in ranks {
                for b in ranks {
                    pairs.append((overlap(planned.slots(ofRank: a), current.slots(ofRank: b)), a, b))
                }
            }
            pairs.sort { $0.overlap > $1.overlap || ($0.overlap == $1.overlap && ($0.a, $0.b) < ($1.a, $1.b)) }
            var usedOld = Set<Int>()
            for pair in pairs where target[pair.a] < 0 && !usedOld.contains(pair.b) {
                target[pair.a] = pair.b
                usedOld.insert(pair.b)
            }
        }
        var out = [Int32](repeating: -1, count: planned.numSlots)
        for a in 0..<r {
            let b = target[a]
            var pending = Array(planned.slots(ofRank: a))
            let old = current.slots(ofRank: b)
            // Keep experts that stay on this rank in their old local slot.
            for (k, e) in old.enumerated() {
                if let i = pending.firstIndex(of: e) {
                    out[b * p + k] = e
                    pending.remove(at: i)
                }
            }
            var next = 0
            for k in 0..<p where out[b * p + k] < 0 {
                out[b * p + k] = pending[next]
                next += 1
            }
        }
        return try Placement(
            slotExpert: out, numExperts: planned.numExperts, numRanks: r,
            allowSameRankReplicas: true)
    }

    /// Size of the multiset intersection of two slot lists.
    static func overlap(_ x: ArraySlice<Int32>, _ y: ArraySlice<Int32>) -> Int {
        var rest = Array(y)
        var n = 0
        for e in x {
            if let i = rest.firstIndex(of: e) { rest.swapAt(i, rest.count - 1); rest.removeLast(); n += 1 }
        }
        return n
    }
}

extension Placement {
    /// This placement with ranks permuted inside each node and slots permuted inside each rank so that as many
    /// slots as possible keep `current`'s expert; rank contents, and so loads, are unchanged.
    ///
    /// - Throws: `PlacementError.invalidArgument` when the shapes differ.
    public func aligned(to current: Placement, topology: Topology) throws -> Placement {
        guard current.numExperts == numExperts && current.numSlots == numSlots && current.numRanks == numRanks,
              topology.numRanks == numRanks
        else {
            throw PlacementError.invalidArgument(
                "cannot align a placement of \(numExperts) experts, \(numSlots) slots, \(numRanks) ranks to one of "
                    + "\(current.numExperts), \(current.numSlots), \(current.numRanks) with \(topology.numRanks) ranks")
        }
        return try PlacementAlignment.align(self, to: current, topology: topology)
    }
}
