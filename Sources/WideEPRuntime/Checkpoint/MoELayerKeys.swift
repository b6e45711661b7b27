/// The tensor key names of one MoE layer in a Hugging Face checkpoint, as detected from the keys present.
///
/// Layouts (N is the layer):
/// - DeepSeek-V2/V3: `model.layers.N.mlp.gate.weight` [E, H], `mlp.gate.e_score_correction_bias` [E],
///   `mlp.experts.e.{gate,up,down}_proj.weight`, `mlp.shared_experts.{gate,up,down}_proj.weight`;
/// - Qwen2-MoE / Qwen3-MoE: `mlp.gate.weight`, `mlp.experts.e.{gate,up,down}_proj.weight`, optionally
///   `mlp.shared_expert.{gate,up,down}_proj.weight` and `mlp.shared_expert_gate.weight` [1, H];
/// - Mixtral: `block_sparse_moe.gate.weight`, `block_sparse_moe.experts.e.{w1,w3,w2}.weight`;
/// - transformers 5.x module state (any family): `mlp.experts.gate_up_proj` [E, 2I, H] and
///   `mlp.experts.down_proj` [E, H, I] instead of per-expert keys.
public struct MoELayerKeys: Sendable, Equatable {
    /// How routed experts are stored.
    public enum Experts: Sendable, Equatable {
        /// One tensor per expert and projection; the names of the gate (W1), up (W3) and down (W2) projections,
        /// e.g. `gate_proj`/`up_proj`/`down_proj` or `w1`/`w3`/`w2`.
        case perExpert(gate: String, up: String, down: String)
        /// Fused `experts.gate_up_proj` [E, 2I, H] (gate rows first) and `experts.down_proj` [E, H, I].
        case fused
    }

    /// Layer index N.
    public let layer: Int
    /// Common prefix, e.g. `model.layers.3.mlp.` or `model.layers.3.block_sparse_moe.`.
    public let prefix: String
    /// Expert storage.
    public let experts: Experts
    /// Prefix of the shared expert MLP (`…shared_experts.` or `…shared_expert.`), nil when absent.
    public let sharedPrefix: String?

    /// Router weight [E, H].
    public var router: String { prefix + "gate.weight" }
    /// Selection-only correction bias [E] (DeepSeek-V3).
    public var correctionBias: String { prefix + "gate.e_score_correction_bias" }
    /// Qwen2-MoE shared expert gate [1, H].
    public var sharedGate: String { prefix + "shared_expert_gate.weight" }

    /// Keys of expert `e`'s gate (W1), up (W3) and down (W2) weights; for fused storage, the two fused tensors
    /// (gate and up share `gate_up_proj`).
    public func expert(_ e: Int) -> (gate: String, up: String, down: String) {
        switch experts {
        case let .perExpert(g, u, d):
            let p = prefix + "experts.\(e)."
            return (p + g + ".weight", p + u + ".weight", p + d + ".weight")
        case .fused:
            return (prefix + "experts.gate_up_proj", prefix + "experts.gate_up_proj", prefix + "experts.down_proj")
        }
    }

    /// Keys of the shared expert's gate, up and down projections, when there is one.
    public var shared: (gate: String, up: String, down: String)? {
        guard let p = sharedPrefix else { return nil }
        return (p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight")
    }

    /// Detects layer `layer`'s MoE keys among `has` (a key-membership test), or nil when the layer has no MoE router.
    public static func detect(layer: Int, has: (String) -> Bool) -> MoELayerKeys? {
        for block in ["mlp", "block_sparse_moe"] {
            let prefix = "model.layers.\(layer).\(block)."
            guard has(prefix + "gate.weight") else { continue }
            // The block's usual names first, then the other family's, then fused tensors.
            let hf = ("gate_proj", "up_proj", "down_proj"), mixtral = ("w1", "w3", "w2")
            let candidates = block == "mlp" ? [hf, mixtral] : [mixtral, hf]
            var experts = Experts.perExpert(gate: candidates[0].0, up: candidates[0].1, down: candidates[0].2)
            if let n = candidates.first(where: { has(prefix + "experts.0.\($0.0).weight") }) {
                experts = .perExpert(gate: n.0, up: n.1, down: n.2)
            } else if has(prefix + "experts.gate_up_proj") {
                experts = .fused
            }
            // Without expert 0's keys the layout is still this one; loading then names the first missing key.
            let shared = ["shared_experts.", "shared_expert."].first { has(prefix + $0 + "gate_proj.weight") }
            return MoELayerKeys(layer: layer, prefix: prefix, experts: experts, sharedPrefix: shared.map { prefix + $0 })
        }
        return nil
    }

    /// Whether layer `layer` has a dense MLP (`mlp.gate_proj.weight` or `mlp.down_proj.weight`) in the checkpoint.
    static func isDense(layer: Int, has: (String) -> Bool) -> Bool {
        has("model.layers.\(layer).mlp.gate_proj.weight") || has("model.layers.\(layer).mlp.down_proj.weight")
            || has("model.layers.\(layer).mlp.up_proj.weight")
    }
}
