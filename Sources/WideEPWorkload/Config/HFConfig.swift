import Foundation
import WideEPCore

/// Reads a Hugging Face `config.json` into a `MoEConfig`.
///
/// Families and the keys read:
/// - DeepSeek-V3 / R1 / Kimi-K2 and DeepSeek-V2 (`deepseek_v3`, `kimi_k2`, `deepseek_v2`): `n_routed_experts`,
///   `num_experts_per_tok`, `n_group`, `topk_group`, `n_shared_experts`, `hidden_size`, `moe_intermediate_size`,
///   `num_hidden_layers`, `first_k_dense_replace`, `moe_layer_freq`, `routed_scaling_factor`, `scoring_func`,
///   `topk_method` (`noaux_tc` adds the correction bias and group-limited routing; `greedy` ignores groups),
///   `norm_topk_prob`;
/// - Qwen2-MoE / Qwen3-MoE (`qwen2_moe`, `qwen3_moe`): `num_experts` (or `num_local_experts`), `num_experts_per_tok`, `hidden_size`,
///   `moe_intermediate_size`, `shared_expert_intermediate_size` (> 0: one gated shared expert), `norm_topk_prob`,
///   `num_hidden_layers`, `decoder_sparse_step`, `mlp_only_layers`;
/// - Mixtral (`mixtral`): `num_local_experts`, `num_experts_per_tok`, `hidden_size`, `intermediate_size`,
///   `num_hidden_layers`; top-k weights are renormalised;
/// - OLMoE (`olmoe`): `num_experts`, `num_experts_per_tok`, `hidden_size`, `intermediate_size`, `num_hidden_layers`,
///   `norm_topk_prob`.
///
/// The family comes from `model_type`, else from `architectures`.
public enum HFConfig {
    /// Model families this reader understands.
    public enum Family: String, CaseIterable, Sendable {
        /// DeepSeek-V3 / R1 and Kimi-K2 (`deepseek_v3`, `kimi_k2`).
        case deepseekV3 = "deepseek_v3"
        /// DeepSeek-V2 and V2-Lite (`deepseek_v2`).
        case deepseekV2 = "deepseek_v2"
        /// Qwen1.5/Qwen2-MoE (`qwen2_moe`), with a gated shared expert.
        case qwen2MoE = "qwen2_moe"
        /// Qwen3-MoE (`qwen3_moe`).
        case qwen3MoE = "qwen3_moe"
        /// Mixtral (`mixtral`).
        case mixtral
        /// OLMoE (`olmoe`).
        case olmoe
    }

    static let modelTypes: [String: Family] = [
        "deepseek_v3": .deepseekV3, "kimi_k2": .deepseekV3, "deepseek_v2": .deepseekV2,
        "qwen2_moe": .qwen2MoE, "qwen3_moe": .qwen3MoE, "mixtral": .mixtral, "olmoe": .olmoe,
    ]
    static let architectures: [String: Family] = [
        "DeepseekV3ForCausalLM": .deepseekV3, "DeepseekV2ForCausalLM": .deepseekV2,
        "Qwen2MoeForCausalLM": .qwen2MoE, "Qwen3MoeForCausalLM": .qwen3MoE, "MixtralForCausalLM": .mixtral,
        "OlmoeForCausalLM": .olmoe,
    ]

    /// Loads `path`, applies `overrides` (`MoEConfig.overriding`) and validates the result.
    ///
    /// - Throws: `FileAccessError`, or `HFConfigError` naming the file and the key at fault.
    public static func load(path: String, overrides: [(String, String)] = []) throws -> MoEConfig {
        try parse(json: try FileAccessError.read(path), path: path, overrides: overrides)
    }

    /// Parses config.json bytes; `path` is used in messages only.
    public static func parse(json: Data, path: String = "config.json", overrides: [(String, String)] = []) throws -> MoEConfig {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: json, options: [])
        } catch {
            throw HFConfigError.malformedJSON(path: path, reason: JSONNumbers.reason(error))
        }
        guard let object = root as? [String: Any] else {
            throw HFConfigError.malformedJSON(path: path, reason: "top level is \(JSONNumbers.kind(root)), expected an object")
        }
        let keys = Keys(object: object, path: path)
        let family = try family(of: keys)
        var config = try build(family, keys)
        do {
            try config.validate()
            if !overrides.isEmpty { config = try config.overriding(overrides) }
        } catch let error as ConfigError {
            throw HFConfigError.invalid(path: path, error)
        }
        return config
    }

    /// The model family of a parsed config.json.
    static func family(of keys: Keys) throws -> Family {
        let modelType = try keys.string("model_type")
        if let t = modelType, let f = modelTypes[t] { return f }
        let archs = try keys.strings("architectures") ?? []
        if let f = archs.lazy.compactMap({ architectures[$0] }).first { return f }
        throw HFConfigError.unknownModel(
            path: keys.path, modelType: modelType, architectures: archs,
            supported: modelTypes.keys.sorted())
    }

    private static func build(_ family: Family, _ k: Keys) throws -> MoEConfig {
        let pathName = try k.string("_name_or_path").flatMap { $0.split(separator: "/").last.map(String.init) }
        let modelType = try k.string("model_type")
        let name = pathName ?? modelType ?? family.rawValue
        let hidden = try k.requiredInt("hidden_size", family)
        let layers = try k.requiredInt("num_hidden_layers", family)
        switch family {
        case .deepseekV3, .deepseekV2:
            let experts = try k.requiredInt("n_routed_experts", family)
            let firstDense = try k.int("first_k_dense_replace") ?? 0
            let freq = max(1, try k.int("moe_layer_freq") ?? 1)
            let moeLayers = (0..<layers).filter { $0 >= firstDense && $0 % freq == 0 }.count
            let method = try k.string("topk_method") ?? (family == .deepseekV3 ? "noaux_tc" : "greedy")
            let scoring = try k.string("scoring_func") ?? (family == .deepseekV3 ? "sigmoid" : "softmax")
            guard let score = ScoringFunction(rawValue: scoring) else {
                throw HFConfigError.unsupported(path: k.path, key: "scoring_func", value: scoring, supported: "softmax, sigmoid")
            }
            let grouped: Bool
            switch method {
            case "noaux_tc": grouped = true
            case "greedy": grouped = false
            default:
                throw HFConfigError.unsupported(
                    path: k.path, key: "topk_method", value: method,
                    supported: "noaux_tc (group score = sum of top-2), greedy (no groups)")
            }
            let inter = try k.requiredInt("moe_intermediate_size", family)
            return MoEConfig(
                name: name, numExperts: experts, topK: try k.requiredInt("num_experts_per_tok", family),
                numGroups: grouped ? try k.int("n_group") ?? 1 : 1,
                topKGroup: grouped ? try k.int("topk_group") ?? 1 : 1,
                numShared: try k.int("n_shared_experts") ?? 0, hiddenSize: hidden, moeIntermediateSize: inter,
                sharedIntermediateSize: inter, numMoELayers: moeLayers,
                routedScalingFactor: Float(try k.double("routed_scaling_factor") ?? 1), scoring: score,
                normTopKProb: try k.bool("norm_topk_prob") ?? false, hasCorrectionBias: method == "noaux_tc")
        case .qwen2MoE, .qwen3MoE:
            // Hub checkpoints write `num_experts`; transformers 5.x's Qwen3-MoE config writes `num_local_experts`.
            let experts = try k.int("num_experts") ?? k.requiredInt("num_local_experts", family)
            let step = max(1, try k.int("decoder_sparse_step") ?? 1)
            let mlpOnly = Set(try k.ints("mlp_only_layers") ?? [])
            let moeLayers = (0..<layers).filter { !mlpOnly.contains($0) && ($0 + 1) % step == 0 }.count
            let shared = try k.int("shared_expert_intermediate_size") ?? 0
            let inter = try k.requiredInt("moe_intermediate_size", family)
            return MoEConfig(
                name: name, numExperts: experts, topK: try k.requiredInt("num_experts_per_tok", family),
                numShared: shared > 0 ? 1 : 0, hiddenSize: hidden, moeIntermediateSize: inter,
                sharedIntermediateSize: shared > 0 ? shared : inter, numMoELayers: moeLayers, scoring: .softmax,
                normTopKProb: try k.bool("norm_topk_prob") ?? false, sharedExpertGate: shared > 0)
        case .mixtral:
            return MoEConfig(
                name: name, numExperts: try k.requiredInt("num_local_experts", family),
                topK: try k.requiredInt("num_experts_per_tok", family), hiddenSize: hidden,
                moeIntermediateSize: try k.requiredInt("intermediate_size", family), numMoELayers: layers,
                scoring: .softmax, normTopKProb: true)
        case .olmoe:
            return MoEConfig(
                name: name, numExperts: try k.requiredInt("num_experts", family),
                topK: try k.requiredInt("num_experts_per_tok", family), hiddenSize: hidden,
                moeIntermediateSize: try k.requiredInt("intermediate_size", family), numMoELayers: layers,
                scoring: .softmax, normTopKProb: try k.bool("norm_topk_prob") ?? false)
        }
    }
}
