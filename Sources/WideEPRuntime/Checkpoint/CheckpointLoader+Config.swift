import Foundation
import WideEPCore
import WideEPWorkload

extension CheckpointLoader {
    /// The checkpoint's MoE shape: `HFConfig.parse` on `config.json`, after one key alias.
    ///
    /// transformers 5.x writes Qwen3-MoE's expert count as `num_local_experts` (its attribute map), while Hub
    /// checkpoints use `num_experts`, the key `HFConfig` reads; the alias is copied over when only it is present.
    static func moeConfig(configPath: String) throws -> MoEConfig {
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw CheckpointError.badConfig(path: configPath, reason: "cannot read the file")
        }
        guard var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return try HFConfig.parse(json: data, path: configPath)  // HFConfig explains what is wrong.
        }
        let modelType = object["model_type"] as? String ?? ""
        guard modelType.hasPrefix("qwen"), object["num_experts"] == nil, let alias = object["num_local_experts"] else {
            return try HFConfig.parse(json: data, path: configPath)
        }
        object["num_experts"] = alias
        return try HFConfig.parse(json: try JSONSerialization.data(withJSONObject: object), path: configPath)
    }
}
