import Foundation
import WideEPCore
import WideEPTestSupport

/// Random planning cases for the planner, split and migration tests.
enum PlanningFixtures {
    /// A random request shape: ranks, nodes, experts and slots with E ≤ S ≤ E × R.
    struct Shape {
        var experts: Int
        var ranks: Int
        var nodes: Int
        var slots: Int
        var groups: Int
    }

    static func shape(_ rng: inout SplitMix64) -> Shape {
        let ranks = [1, 2, 4, 8].randomElement(using: &rng)!
        let nodes = [1, 2, 4].filter { ranks % $0 == 0 }.randomElement(using: &rng)!
        let experts = [8, 16, 32].randomElement(using: &rng)!
        let minPer = (experts + ranks - 1) / ranks
        let per = Int.random(in: minPer...(minPer + 3), using: &rng)
        let slots = min(per * ranks, experts * ranks)
        let groups = [1, 2, 4, 8].filter { experts % $0 == 0 }.randomElement(using: &rng)!
        return Shape(experts: experts, ranks: ranks, nodes: nodes, slots: slots, groups: groups)
    }

    /// Heavy-tailed loads, [E]: log-normal tokens with a few zeros.
    static func loads(_ e: Int, _ rng: inout SplitMix64, sigma: Double = 1.0) -> [Double] {
        (0..<e).map { _ in
            if Double.random(in: 0..<1, using: &rng) < 0.05 { return 0 }
            let u1 = Double.random(in: Double.ulpOfOne..<1, using: &rng)
            let u2 = Double.random(in: 0..<1, using: &rng)
            let z = (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
            return (1000 * Foundation.exp(sigma * z)).rounded()
        }
    }

    /// Max rank load of a placement under an even split of `loads`.
    static func peak(_ p: Placement, _ loads: [Double]) -> Double { p.rankLoads(expertLoads: loads).max() ?? 0 }

    /// Checks the structural invariants every planned placement must satisfy.
    static func invariantsHold(_ p: Placement, experts: Int, slots: Int, ranks: Int, allowSameRank: Bool = false)
        -> Bool
    {
        guard p.numExperts == experts, p.numSlots == slots, p.numRanks == ranks else { return false }
        for e in 0..<experts where p.replicaCount[e] < 1 { return false }
        if p.replicaCount.reduce(0, +) != Int32(slots) { return false }
        if !allowSameRank {
            for r in 0..<ranks where Set(p.slots(ofRank: r)).count != p.slotsPerRank { return false }
        }
        return true
    }
}
