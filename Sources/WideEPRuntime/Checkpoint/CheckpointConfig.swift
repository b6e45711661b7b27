import Foundation

/// The parts of a checkpoint's `config.json` that say which layers are MoE layers and how FP8 weights are scaled.
///
/// The MoE shape itself (`MoEConfig`) comes from `HFConfig` (WideEPWorkload); this reads only what that does not
/// carry: the layer count, the dense/MoE layer pattern of each family, and `quantization_config`.
public struct CheckpointConfig: Sendable, Equatable {
    /// `model_type`, e.g. `deepseek_v3`, `qwen3_moe`, `mixtral` ("unknown" when absent).
    public var modelType: String
    /// `num_hidden_layers`: decoder layers, dense and MoE.
    public var numLayers: Int
    /// DeepSeek `first_k_dense_replace`: the first k layers are dense (0 when absent).
    public var firstDenseLayers: Int
    /// DeepSeek-V2 `moe_layer_freq`: layer i ≥ k is MoE when i % freq == 0 (1 when absent).
    public var moeLayerFrequency: Int
    /// Qwen-MoE `decoder_sparse_step`: layer i is MoE when (i + 1) % step == 0 (1 when absent).
    public var sparseStep: Int
    /// Qwen-MoE `mlp_only_layers`: layers forced dense.
    public var mlpOnlyLayers: [Int]
    /// FP8 block size from `quantization_config.weight_block_size`, [rows, cols] (default 128 × 128).
    public var weightBlock: (rows: Int, cols: Int)

    public static func == (a: Self, b: Self) -> Bool {
        a.modelType == b.modelType && a.numLayers == b.numLayers && a.firstDenseLayers == b.firstDenseLayers
            && a.moeLayerFrequency == b.moeLayerFrequency && a.sparseStep == b.sparseStep
            && a.mlpOnlyLayers == b.mlpOnlyLayers && a.weightBlock == b.weightBlock
    }

    /// Reads `path` (a `config.json`).
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.badConfig(path: path, reason: "cannot read the file")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw CheckpointError.badConfig(path: path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard var root = object as? [String: Any] else {
            throw CheckpointError.badConfig(path: path, reason: "expected a JSON object")
        }
        // Multimodal wrappers (e.g. Qwen3-VL-MoE) keep the language model's fields in `text_config`.
        if root["num_hidden_layers"] == nil, let text = root["text_config"] as? [String: Any] { root = text }
        func int(_ key: String, _ fallback: Int?) throws -> Int {
            guard let v = root[key], !(v is NSNull) else {
                if let fallback { return fallback }
                throw CheckpointError.badConfig(path: path, reason: "missing integer field \"\(key)\"")
            }
            guard let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded() else {
                throw CheckpointError.badConfig(path: path, reason: "field \"\(key)\" = \(v) is not an integer")
            }
            return n.intValue
        }
        modelType = root["model_type"] as? String ?? "unknown"
        numLayers = try int("num_hidden_layers", nil)
        firstDenseLayers = try int("first_k_dense_replace", 0)
        moeLayerFrequency = max(1, try int("moe_layer_freq", 1))
        sparseStep = max(1, try int("decoder_sparse_step", 1))
        if let list = root["mlp_only_layers"], !(list is NSNull) {
            guard let a = list as? [NSNumber] else {
                throw CheckpointError.badConfig(path: path, reason: "field \"mlp_only_layers\" is not a list of integers")
            }
            mlpOnlyLayers = a.map(\.intValue)
        } else {
            mlpOnlyLayers = []
        }
        weightBlock = (128, 128)
        if let q = root["quantization_config"] as? [String: Any], let b = q["weight_block_size"] {
            guard let a = b as? [NSNumber], a.count == 2, a[0].intValue >= 1, a[1].intValue >= 1 else {
                throw CheckpointError.badConfig(
                    path: path, reason: "quantization_config.weight_block_size = \(b) is not [rows, cols]")
            }
            weightBlock = (a[0].intValue, a[1].intValue)
        }
        guard numLayers >= 1 else {
            throw CheckpointError.badConfig(path: path, reason: "num_hidden_layers = \(numLayers) must be >= 1")
        }
    }

    /// Why the config makes layer `layer` dense, or nil when it allows an MoE block there.
    public func denseReason(layer: Int) -> String? {
        if layer < firstDenseLayers { return "first_k_dense_replace = \(firstDenseLayers)" }
        if moeLayerFrequency > 1, layer % moeLayerFrequency != 0 { return "moe_layer_freq = \(moeLayerFrequency)" }
        if mlpOnlyLayers.contains(layer) { return "listed in mlp_only_layers" }
        if sparseStep > 1, (layer + 1) % sparseStep != 0 { return "decoder_sparse_step = \(sparseStep)" }
        return nil
    }
}
