/// How one batch's tokens of an expert are divided among the expert's replicas (DESIGN.md §3, ReplicaSplit).
public enum SplitPolicy: String, CaseIterable, Codable, Sendable {
    /// Round-robin: count / r tokens per replica, the remainder to the first replicas in `replicaSlots` order
    /// (TensorRT-LLM's behaviour).
    case even
    /// Per-batch quotas that minimise the maximum rank load for the placement (water-filling).
    case balanced
}
