import Foundation
import Testing
import WideEPCore
import WideEPTestSupport
@testable import WideEPWorkload

@Suite struct HFConfigTests {
    static func parse(_ json: String, overrides: [(String, String)] = []) throws -> MoEConfig {
        try HFConfig.parse(json: Data(json.utf8), path: "config.json", overrides: overrides)
    }

    /// Compares everything but the name.
    static func same(_ a: MoEConfig, _ b: MoEConfig) -> Bool {
        var x = a
        x.name = b.name
        return x == b
    }

    static let deepseekV3 = """
    {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,
     "moe_intermediate_size": 2048, "intermediate_size": 18432, "n_routed_experts": 256, "n_shared_experts": 1,
     "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4, "num_hidden_layers": 61, "first_k_dense_replace": 3,
     "moe_layer_freq": 1, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
     "norm_topk_prob": true, "_name_or_path": "deepseek-ai/DeepSeek-R1"}
    """

    @Test func readsDeepSeekV3() throws {
        let c = try Self.parse(Self.deepseekV3)
        #expect(Self.same(c, .deepseekV3))
        #expect(c.name == "DeepSeek-R1")
        #expect(c.numMoELayers == 58 && c.hasCorrectionBias && c.scoring == .sigmoid)
    }

    @Test func readsKimiK2AndDeepSeekV2Lite() throws {
        let kimi = """
        {"model_type": "kimi_k2", "hidden_size": 7168, "moe_intermediate_size": 2048, "n_routed_experts": 384,
         "n_shared_experts": 1, "num_experts_per_tok": 8, "n_group": 1, "topk_group": 1, "num_hidden_layers": 61,
         "first_k_dense_replace": 1, "routed_scaling_factor": 2.827, "scoring_func": "sigmoid",
         "topk_method": "noaux_tc", "norm_topk_prob": true}
        """
        #expect(Self.same(try Self.parse(kimi), .kimiK2))
        let lite = """
        {"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "hidden_size": 2048,
         "moe_intermediate_size": 1408, "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
         "n_group": 1, "topk_group": 1, "num_hidden_layers": 27, "first_k_dense_replace": 1, "moe_layer_freq": 1,
         "routed_scaling_factor": 1.0, "scoring_func": "softmax", "topk_method": "greedy", "norm_topk_prob": false}
        """
        #expect(Self.same(try Self.parse(lite), .deepseekV2Lite))
    }

    @Test func readsQwenMixtralAndOLMoE() throws {
        let qwen3 = """
        {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 4096,
         "moe_intermediate_size": 1536, "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 94,
         "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": true}
        """
        #expect(Self.same(try Self.parse(qwen3), .qwen3_235B))
        let mixtral = """
        {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
         "intermediate_size": 14336, "num_local_experts": 8, "num_experts_per_tok": 2, "num_hidden_layers": 32}
        """
        #expect(Self.same(try Self.parse(mixtral), .mixtral8x7B))
        let olmoe = """
        {"architectures": ["OlmoeForCausalLM"], "model_type": "olmoe", "hidden_size": 2048, "intermediate_size": 1024,
         "num_experts": 64, "num_experts_per_tok": 8, "num_hidden_layers": 16, "norm_topk_prob": false}
        """
        #expect(Self.same(try Self.parse(olmoe), .olmoe1B7B))
    }

    @Test func qwen2MoESharedExpertAndSparseLayers() throws {
        let qwen2 = """
        {"model_type": "qwen2_moe", "hidden_size": 2048, "moe_intermediate_size": 1408, "num_experts": 60,
         "num_experts_per_tok": 4, "num_hidden_layers": 24, "shared_expert_intermediate_size": 5632,
         "decoder_sparse_step": 2, "mlp_only_layers": [1, 3], "norm_topk_prob": false}
        """
        let c = try Self.parse(qwen2)
        #expect(c.numShared == 1 && c.sharedIntermediateSize == 5632 && c.sharedExpertGate)
        // Layers 1, 3, 5, …, 23 are sparse by step; 1 and 3 are forced dense: 12 − 2.
        #expect(c.numMoELayers == 10)
        #expect(!c.normTopKProb && c.scoring == .softmax)
    }

    @Test func familyFromArchitecturesWhenModelTypeIsUnknown() throws {
        let json = Self.deepseekV3.replacingOccurrences(of: "\"deepseek_v3\"", with: "\"my_fork\"")
        #expect(try Self.parse(json).numExperts == 256)
    }

    @Test func appliesOverrides() throws {
        let c = try Self.parse(Self.deepseekV3, overrides: [("numMoELayers", "4"), ("hiddenSize", "256")])
        #expect(c.numMoELayers == 4 && c.hiddenSize == 256)
        expectError(["config.json", "unknown config field 'bogus'"]) { _ = try Self.parse(Self.deepseekV3, overrides: [("bogus", "1")]) }
        expectError(["config.json", "topK = 300"]) { _ = try Self.parse(Self.deepseekV3, overrides: [("topK", "300")]) }
    }

    @Test func clearErrorsForUnknownModelsAndBadKeys() {
        expectError(["config.json", "model_type 'llama'", "deepseek_v3", "mixtral"]) {
            _ = try Self.parse(#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#)
        }
        expectError(["missing key 'n_routed_experts'", "deepseek_v3"]) {
            _ = try Self.parse(Self.deepseekV3.replacingOccurrences(of: "\"n_routed_experts\"", with: "\"x\""))
        }
        expectError(["key 'hidden_size' is a string, expected an integer"]) {
            _ = try Self.parse(Self.deepseekV3.replacingOccurrences(of: "7168", with: "\"7168\""))
        }
        expectError(["topk_method 'group_limited_greedy' is not supported"]) {
            _ = try Self.parse(Self.deepseekV3.replacingOccurrences(of: "noaux_tc", with: "group_limited_greedy"))
        }
        expectError(["malformed JSON"]) { _ = try Self.parse("{") }
        expectError(["absent.json", "no such file"]) { _ = try HFConfig.load(path: "/nonexistent/absent.json") }
    }
}
