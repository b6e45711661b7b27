import Foundation
import WideEPCore
import WideEPWorkload

/// Loads one MoE layer's weights from a Hugging Face checkpoint folder into `MoELayerWeights` (float32).
///
/// The folder holds `config.json` and either `model.safetensors` or shards listed in
/// `model.safetensors.index.json`. Key layouts: DeepSeek-V2/V3, Qwen2-MoE/Qwen3-MoE, Mixtral, and transformers 5.x
/// fused experts (see `MoELayerKeys`). Weights may be BF16, F16 or F32, or DeepSeek-V3's FP8 E4M3 with
/// `weight_scale_inv` block scales (128 × 128 unless `quantization_config.weight_block_size` says otherwise), which
/// are dequantised on load. Every tensor's shape is checked against the config.
public enum CheckpointLoader {
    /// Everything about a checkpoint that does not need its weights: the MoE shape, the layer pattern and its MoE
    /// layers.
    public struct Summary: Sendable {
        /// The checkpoint folder.
        public var directory: String
        /// MoE shape from `config.json` (via `HFConfig`).
        public var config: MoEConfig
        /// Layer pattern and FP8 block size from `config.json`.
        public var layout: CheckpointConfig
        /// Layers with an MoE block in the weights, ascending.
        public var moeLayers: [Int]
    }

    /// Reads `config.json` and the tensor index of `directory` and lists its MoE layers.
    public static func summary(directory: String) throws -> Summary {
        let (files, layout, config) = try open(directory)
        return Summary(directory: directory, config: config, layout: layout, moeLayers: moeLayers(files, layout))
    }

    /// Layers of `directory`'s checkpoint that have an MoE block (a router weight), ascending.
    ///
    /// `wide-ep run --checkpoint DIR` loads these with `loadLayer(directory:layer:)`.
    public static func moeLayers(directory: String) throws -> [Int] {
        try summary(directory: directory).moeLayers
    }

    /// Loads layer `layer`'s router, correction bias, routed experts and shared expert, in float32.
    ///
    /// Every tensor is found and shape-checked before any is converted, so a bad checkpoint fails fast; `progress`
    /// is then called once with a line describing the conversion about to run (it can take a while for real models).
    ///
    /// - Throws: `CheckpointError` for a missing folder, config or tensor (naming the key and the file), a wrong
    ///   shape, an unknown layout, a dense layer or an out-of-range index; `SafeTensorsError` for an unreadable shard;
    ///   `HFConfigError` when `config.json` does not describe a supported MoE model.
    public static func loadLayer(
        directory: String, layer: Int, progress: ((String) -> Void)? = nil
    ) throws -> MoELayerWeights {
        let (files, layout, config) = try open(directory)
        let keys = try layerKeys(files, layout, layer: layer, directory: directory)
        return try load(files, keys: keys, config: config, block: layout.weightBlock, directory: directory,
                        progress: progress)
    }

    /// Opens the folder: config, MoE shape and tensor index.
    static func open(_ directory: String) throws -> (CheckpointFiles, CheckpointConfig, MoEConfig) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError.notADirectory(path: directory)
        }
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw CheckpointError.missingConfig(directory: directory)
        }
        let layout = try CheckpointConfig(path: configPath)
        let config = try HFConfig.load(path: configPath)
        return (try CheckpointFiles(directory: directory), layout, config)
    }

    /// Layers with a router key, ascending.
    static func moeLayers(_ files: CheckpointFiles, _ layout: CheckpointConfig) -> [Int] {
        (0..<layout.numLayers).filter { MoELayerKeys.detect(layer: $0, has: files.contains) != nil }
    }

    /// Detects layer `layer`'s keys, or explains why it has none.
    static func layerKeys(
        _ files: CheckpointFiles, _ layout: CheckpointConfig, layer: Int, directory: String
    ) throws -> MoELayerKeys {
        if let keys = MoELayerKeys.detect(layer: layer, has: files.contains) { return keys }
        guard layer >= 0, layer < layout.numLayers else {
            throw CheckpointError.layerOutOfRange(layer: layer, numLayers: layout.numLayers)
        }
        let moe = moeLayers(files, layout)
        if let reason = layout.denseReason(layer: layer) {
            throw CheckpointError.denseLayer(layer: layer, reason: reason, moeLayers: moe)
        }
        if MoELayerKeys.isDense(layer: layer, has: files.contains) {
            throw CheckpointError.denseLayer(layer: layer, reason: "it has mlp.gate_proj/up_proj/down_proj weights",
                                             moeLayers: moe)
        }
        if moe.isEmpty {
            throw CheckpointError.unknownLayout(directory: directory, layer: layer, modelType: layout.modelType)
        }
        // Other layers have MoE blocks, so this one's router is simply missing.
        throw CheckpointError.missingTensor(key: "model.layers.\(layer).mlp.gate.weight", file: files.source)
    }

    /// Reads and converts every tensor of the layer.
    static func load(
        _ files: CheckpointFiles, keys: MoELayerKeys, config c: MoEConfig, block: (rows: Int, cols: Int),
        directory: String, progress: ((String) -> Void)?
    ) throws -> MoELayerWeights {
        let h = c.hiddenSize, e = c.numExperts, i = c.moeIntermediateSize
        let router = try files.matrix(keys.router, shape: [e, h], block: block)
        let bias = c.hasCorrectionBias ? try files.matrix(keys.correctionBias, shape: [e], block: block) : nil
        // Resolve (and shape-check) every matrix first, serially; convert in parallel afterwards.
        var w13Parts: [(gate: CheckpointMatrix, up: CheckpointMatrix)] = []
        var w2Parts: [CheckpointMatrix] = []
        w13Parts.reserveCapacity(e)
        w2Parts.reserveCapacity(e)
        for x in 0..<e {
            let k = keys.expert(x)
            switch keys.experts {
            case .perExpert:
                w13Parts.append((try files.matrix(k.gate, shape: [i, h], block: block),
                                 try files.matrix(k.up, shape: [i, h], block: block)))
                w2Parts.append(try files.matrix(k.down, shape: [h, i], block: block))
            case .fused:
                let both = try files.fusedSlice(k.gate, experts: e, expert: x, rows: 2 * i, cols: h)
                w13Parts.append((both, both))
                w2Parts.append(try files.fusedSlice(k.down, experts: e, expert: x, rows: h, cols: i))
            }
        }
        let shared = try resolveShared(files, keys: keys, config: c, block: block, directory: directory)
        if let progress {
            let bytes = w13Parts.reduce(0) { $0 + $1.gate.tensor.dtype.byteSize * 2 * i * h }
                + w2Parts.reduce(0) { $0 + $1.tensor.dtype.byteSize * h * i }
            let dtypes = Set(w2Parts.map(\.tensor.dtype.rawValue)).sorted().joined(separator: "/")
            let mib = String(format: "%.1f", Double(bytes) / 1_048_576)
            progress("converting layer \(keys.layer): \(e) experts, \(mib) MiB of \(dtypes) weights to float32")
        }
        var w13 = [Float](repeating: 0, count: e * 2 * i * h)
        var w2 = [Float](repeating: 0, count: e * h * i)
        let fused = keys.experts == .fused
        w13.withUnsafeMutableBufferPointer { w13p in
            w2.withUnsafeMutableBufferPointer { w2p in
                let a = w13p.baseAddress!, b = w2p.baseAddress!
                DispatchQueue.concurrentPerform(iterations: e) { x in
                    let dst = a + x * 2 * i * h
                    if fused {
                        w13Parts[x].gate.convert(into: dst)
                    } else {
                        w13Parts[x].gate.convert(into: dst)
                        w13Parts[x].up.convert(into: dst + i * h)
                    }
                    w2Parts[x].convert(into: b + x * h * i)
                }
            }
        }
        var sharedW13: [Float]?
        if let s = shared.mlp {
            let width = s.gate.rows
            var a = [Float](repeating: 0, count: 2 * width * h)
            a.withUnsafeMutableBufferPointer { p in
                s.gate.convert(into: p.baseAddress!)
                s.up.convert(into: p.baseAddress! + width * h)
            }
            sharedW13 = a
        }
        let weights = MoELayerWeights(
            config: c, routerWeight: router.floats(), correctionBias: bias?.floats(), w13: w13, w2: w2,
            sharedW13: sharedW13, sharedW2: shared.mlp?.down.floats(), sharedGate: shared.gate?.floats())
        try weights.validate()
        return weights
    }

    /// The shared expert's matrices (DeepSeek `shared_experts`, Qwen2-MoE `shared_expert` + `shared_expert_gate`),
    /// resolved and shape-checked.
    static func resolveShared(
        _ files: CheckpointFiles, keys: MoELayerKeys, config c: MoEConfig, block: (rows: Int, cols: Int),
        directory: String
    ) throws -> (mlp: (gate: CheckpointMatrix, up: CheckpointMatrix, down: CheckpointMatrix)?, gate: CheckpointMatrix?) {
        let h = c.hiddenSize
        let width = c.numShared * c.sharedIntermediateSize
        guard c.numShared > 0 else {
            if let k = keys.shared {
                throw CheckpointError.configMismatch(
                    directory: directory,
                    reason: "tensor '\(k.gate)' is a shared expert but config.json configures no shared expert")
            }
            return (nil, nil)
        }
        let prefix = keys.prefix + (c.sharedExpertGate ? "shared_expert." : "shared_experts.")
        let k = keys.shared ?? (prefix + "gate_proj.weight", prefix + "up_proj.weight", prefix + "down_proj.weight")
        let mlp = (gate: try files.matrix(k.gate, shape: [width, h], block: block),
                   up: try files.matrix(k.up, shape: [width, h], block: block),
                   down: try files.matrix(k.down, shape: [h, width], block: block))
        var sharedGate: CheckpointMatrix?
        if c.sharedExpertGate {
            sharedGate = try files.matrix(keys.sharedGate, shape: [1, h], block: block)
        } else if files.contains(keys.sharedGate) {
            throw CheckpointError.configMismatch(
                directory: directory,
                reason: "tensor '\(keys.sharedGate)' gates the shared expert but the config has no shared expert gate")
        }
        return (mlp, sharedGate)
    }
}
