extension MoEConfig {
    /// DeepSeek-V3 / R1: 256 experts, top-8, 8 groups keep 4, 1 shared expert.
    public static let deepseekV3 = MoEConfig(
        name: "deepseek-v3", numExperts: 256, topK: 8, numGroups: 8, topKGroup: 4, numShared: 1,
        hiddenSize: 7168, moeIntermediateSize: 2048, numMoELayers: 58, routedScalingFactor: 2.5,
        scoring: .sigmoid, normTopKProb: true, hasCorrectionBias: true)

    /// DeepSeek-V2-Lite: 64 experts, top-6, softmax scoring without renormalisation, 2 shared experts.
    public static let deepseekV2Lite = MoEConfig(
        name: "deepseek-v2-lite", numExperts: 64, topK: 6, numGroups: 1, topKGroup: 1, numShared: 2,
        hiddenSize: 2048, moeIntermediateSize: 1408, numMoELayers: 26, routedScalingFactor: 1.0,
        scoring: .softmax, normTopKProb: false)

    /// Qwen3-235B-A22B: 128 experts, top-8, softmax with renormalisation, no shared expert.
    public static let qwen3_235B = MoEConfig(
        name: "qwen3-235b-a22b", numExperts: 128, topK: 8, hiddenSize: 4096, moeIntermediateSize: 1536,
        numMoELayers: 94, scoring: .softmax, normTopKProb: true)

    /// Qwen3-30B-A3B: 128 experts, top-8, softmax with renormalisation.
    public static let qwen3_30B = MoEConfig(
        name: "qwen3-30b-a3b", numExperts: 128, topK: 8, hiddenSize: 2048, moeIntermediateSize: 768,
        numMoELayers: 48, scoring: .softmax, normTopKProb: true)

    /// Mixtral-8x7B: 8 experts, top-2, renormalised softmax.
    public static let mixtral8x7B = MoEConfig(
        name: "mixtral-8x7b", numExperts: 8, topK: 2, hiddenSize: 4096, moeIntermediateSize: 14336,
        numMoELayers: 32, scoring: .softmax, normTopKProb: true)

    /// OLMoE-1B-7B: 64 experts, top-8, softmax without renormalisation.
    public static let olmoe1B7B = MoEConfig(
        name: "olmoe-1b-7b", numExperts: 64, topK: 8, hiddenSize: 2048, moeIntermediateSize: 1024,
        numMoELayers: 16, scoring: .softmax, normTopKProb: false)

    /// Kimi-K2: DeepSeek-V3 layout with 384 experts, one group, scaling 2.827, 60 MoE layers.
    public static let kimiK2 = MoEConfig(
        name: "kimi-k2", numExperts: 384, topK: 8, numGroups: 1, topKGroup: 1, numShared: 1,
        hiddenSize: 7168, moeIntermediateSize: 2048, numMoELayers: 60, routedScalingFactor: 2.827,
        scoring: .sigmoid, normTopKProb: true, hasCorrectionBias: true)

    /// A DeepSeek-V3-shaped model small enough for the CPU demo: 64 experts, top-8, 8 groups keep 4.
    public static let deepseekV3Mini = MoEConfig(
        name: "deepseek-v3-mini", numExperts: 64, topK: 8, numGroups: 8, topKGroup: 4, numShared: 1,
        hiddenSize: 256, moeIntermediateSize: 128, numMoELayers: 4, routedScalingFactor: 2.5,
        scoring: .sigmoid, normTopKProb: true, hasCorrectionBias: true)

    /// Every preset, in the order `wide-ep presets` lists them.
    public static let presets: [MoEConfig] = [
        deepseekV3, kimiK2, deepseekV2Lite, qwen3_235B, qwen3_30B, mixtral8x7B, olmoe1B7B, deepseekV3Mini,
    ]

    /// Preset names that resolve to DeepSeek-V3's shape.
    static let aliases: [String: String] = [
        "deepseek-r1": "deepseek-v3", "deepseek-v3-0324": "deepseek-v3",
    ]

    /// Looks a preset up by name (or alias), case-insensitively.
    public static func preset(named name: String) throws -> MoEConfig {
        let key = name.lowercased()
        let resolved = aliases[key] ?? key
        if let c = presets.first(where: { $0.name == resolved }) {
            var copy = c
            if resolved != key { copy.name = key }
            return copy
        }
        throw ConfigError.unknownPreset(name, known: presets.map(\.name) + aliases.keys.sorted())
    }
}
