/// Why one MoE layer could not be loaded from a Hugging Face checkpoint folder.
///
/// Every message names the folder or file concerned, the tensor key where there is one, and what would be valid.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// The path is not a readable folder.
    case notADirectory(path: String)
    /// The folder has no `config.json`.
    case missingConfig(directory: String)
    /// `config.json` is not a JSON object, or a field the loader needs has the wrong type.
    case badConfig(path: String, reason: String)
    /// The folder has neither `model.safetensors.index.json` nor `model.safetensors`.
    case noWeights(directory: String)
    /// `model.safetensors.index.json` is malformed.
    case badIndex(path: String, reason: String)
    /// A tensor the layer needs is not in the checkpoint. `file` is the index or the file that was searched.
    case missingTensor(key: String, file: String)
    /// A tensor has the wrong shape for the config.
    case wrongShape(key: String, file: String, shape: [Int], expected: [Int])
    /// A tensor's element type cannot hold weights (e.g. an integer type), or FP8 scales are not F32/BF16/F16.
    case unsupportedDType(key: String, file: String, dtype: String)
    /// The layer index is outside the model.
    case layerOutOfRange(layer: Int, numLayers: Int)
    /// The layer exists but has a dense MLP, not an MoE block.
    case denseLayer(layer: Int, reason: String, moeLayers: [Int])
    /// No known MoE key layout was found for the layer.
    case unknownLayout(directory: String, layer: Int, modelType: String)
    /// The weights disagree with the config (e.g. shared-expert tensors present but no shared expert configured).
    case configMismatch(directory: String, reason: String)

    public var description: String {
        switch self {
        case let .notADirectory(path):
            return "\(path): not a checkpoint folder (expected a folder with config.json and model.safetensors)"
        case let .missingConfig(directory):
            return "\(directory): no config.json in the checkpoint folder"
        case let .badConfig(path, reason):
            return "\(path): \(reason)"
        case let .noWeights(directory):
            return "\(directory): no model.safetensors.index.json or model.safetensors in the checkpoint folder"
        case let .badIndex(path, reason):
            return "\(path): bad safetensors index: \(reason)"
        case let .missingTensor(key, file):
            return "\(file): no tensor '\(key)'"
        case let .wrongShape(key, file, shape, expected):
            return "\(file): tensor '\(key)' has shape \(shape), expected \(expected)"
        case let .unsupportedDType(key, file, dtype):
            return "\(file): tensor '\(key)' has dtype \(dtype): expected BF16, F16, F32 or F8_E4M3 (scales F32)"
        case let .layerOutOfRange(layer, numLayers):
            return "layer \(layer) is out of range: the model has layers 0...\(numLayers - 1)"
        case let .denseLayer(layer, reason, moeLayers):
            return "layer \(layer) is a dense layer (\(reason)), not an MoE layer; MoE layers: \(Self.ranges(moeLayers))"
        case let .unknownLayout(directory, layer, modelType):
            return "\(directory): unknown MoE key layout for model_type '\(modelType)' at layer \(layer): expected "
                + "'model.layers.\(layer).mlp.gate.weight' (DeepSeek-V2/V3, Qwen2/3-MoE) or "
                + "'model.layers.\(layer).block_sparse_moe.gate.weight' (Mixtral)"
        case let .configMismatch(directory, reason):
            return "\(directory): checkpoint weights disagree with config.json: \(reason)"
        }
    }

    /// "1...57" style compression of a sorted layer list, for messages.
    static func ranges(_ layers: [Int]) -> String {
        guard !layers.isEmpty else { return "none" }
        var parts: [String] = []
        var start = layers[0], prev = layers[0]
        for l in layers.dropFirst() {
            if l == prev + 1 { prev = l; continue }
            parts.append(start == prev ? "\(start)" : "\(start)...\(prev)")
            start = l
            prev = l
        }
        parts.append(start == prev ? "\(start)" : "\(start)...\(prev)")
        return parts.joined(separator: ", ")
    }
}
