/// Placement policies (DESIGN.md §3).
public enum PlannerPolicy: String, CaseIterable, Codable, Sendable {
    /// Identity: expert e in slot e; needs numSlots == E.
    case none
    /// TensorRT-LLM: extra slots to the max load-per-replica expert, then LPT packing onto ranks with free slots.
    case greedy
    /// DeepSeek EPLB: hierarchical (groups → nodes, then replicate and pack inside each node) when
    /// groups % nodes == 0, else the global policy.
    case deepseek
    /// WideEP's default: min–max replication, packing, then local-search refinement; node-aware.
    case balanced
}

/// What to plan for: slots, ranks and nodes, policy and constraints.
public struct PlannerRequest: Sendable, Equatable {
    /// Total slots S (a multiple of `topology.numRanks`, ≥ E).
    public var numSlots: Int
    /// Ranks and nodes.
    public var topology: Topology
    /// Policy to plan with.
    public var policy: PlannerPolicy
    /// Expert groups used by the `deepseek` hierarchical policy (`n_group`); 1 means no groups.
    public var numExpertGroups: Int
    /// Allow two replicas of one expert on one rank.
    public var allowSameRankReplicas: Bool
    /// Migration-aware re-planning stops rewriting slots once the predicted imbalance ratio is within this much of
    /// what planning from scratch reaches (absolute, in (max − mean)/mean units; e.g. 0.01).
    public var migrationTolerance: Double

    /// A request; validate it with `validate(numExperts:)` (the planner does).
    public init(
        numSlots: Int, topology: Topology, policy: PlannerPolicy = .balanced, numExpertGroups: Int = 1,
        allowSameRankReplicas: Bool = false, migrationTolerance: Double = 0.01
    ) {
        self.numSlots = numSlots
        self.topology = topology
        self.policy = policy
        self.numExpertGroups = numExpertGroups
        self.allowSameRankReplicas = allowSameRankReplicas
        self.migrationTolerance = migrationTolerance
    }

    /// Checks the request against an expert count, throwing a clear error.
    public func validate(numExperts: Int) throws {
        guard numExperts >= 1 else {
            throw PlacementError.invalidArgument("expert count must be >= 1, got \(numExperts)")
        }
        guard numSlots >= 1 else { throw PlacementError.invalidArgument("slot count must be >= 1, got \(numSlots)") }
        guard numSlots % topology.numRanks == 0 else {
            throw PlacementError.slotsNotDivisible(layer: nil, numSlots: numSlots, numRanks: topology.numRanks)
        }
        guard numSlots >= numExperts else {
            throw PlacementError.tooFewSlots(layer: nil, numSlots: numSlots, numExperts: numExperts)
        }
        if policy == .none && numSlots != numExperts {
            throw PlacementError.invalidArgument(
                "policy none needs --num-slots equal to the expert count \(numExperts), got \(numSlots)")
        }
        if !allowSameRankReplicas {
            // With distinct-rank replicas an expert can have at most R replicas; S ≤ E × R keeps that feasible.
            guard numSlots <= numExperts * topology.numRanks else {
                throw PlacementError.invalidArgument(
                    "slot count \(numSlots) needs more than ep-size \(topology.numRanks) replicas of some expert; "
                        + "at most \(numExperts * topology.numRanks) slots without same-rank replicas")
            }
        }
        guard migrationTolerance.isFinite && migrationTolerance >= 0 else {
            throw PlacementError.invalidArgument(
                "migration tolerance must be a finite value >= 0, got \(migrationTolerance)")
        }
        if policy == .deepseek {
            guard numExpertGroups >= 1 && numExperts % numExpertGroups == 0 else {
                throw PlacementError.invalidArgument(
                    "expert group count \(numExpertGroups) must be >= 1 and divide the expert count \(numExperts)")
            }
        }
    }
}
