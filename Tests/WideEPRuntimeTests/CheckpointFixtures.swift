import Foundation
import WideEPCore
import WideEPWorkload
@testable import WideEPRuntime

/// The tiny transformers checkpoints in Tests/Fixtures/checkpoints (see the README there).
enum CheckpointFixtures {
    /// One fixture folder: which layer is the MoE layer and its shape.
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var layer: Int
        var hidden: Int
        var inter: Int
        var experts: Int
        var topK: Int
        /// Expert weight dtype as stored.
        var dtype: SafeTensorsDType
        var description: String { name }
        var directory: String { CheckpointFixtures.root + "/" + name }
    }

    static let cases: [Case] = [
        Case(name: "deepseek-v3", layer: 1, hidden: 64, inter: 32, experts: 16, topK: 4, dtype: .bf16),
        Case(name: "deepseek-v3-fp8", layer: 0, hidden: 160, inter: 96, experts: 8, topK: 2, dtype: .f8E4M3),
        Case(name: "qwen2-moe", layer: 1, hidden: 64, inter: 32, experts: 8, topK: 2, dtype: .bf16),
        Case(name: "qwen3-moe-f16", layer: 0, hidden: 64, inter: 32, experts: 16, topK: 4, dtype: .f16),
        Case(name: "mixtral", layer: 0, hidden: 64, inter: 32, experts: 8, topK: 2, dtype: .bf16),
        Case(name: "mixtral-f32", layer: 0, hidden: 64, inter: 32, experts: 8, topK: 2, dtype: .f32),
    ]

    static func named(_ name: String) -> Case { cases.first { $0.name == name }! }

    /// `Tests/Fixtures/checkpoints`, found from this file's path.
    static var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/checkpoints").path
    }

    /// The fixture's `hidden_states` [T, H] and transformers' `output` [T, H].
    static func io(_ c: Case) throws -> (x: [Float], expected: [Float], tokens: Int) {
        let x = try SafeTensorsFile(path: c.directory + "/input.safetensors").tensor(named: "hidden_states")
        let y = try SafeTensorsFile(path: c.directory + "/expected.safetensors").tensor(named: "output")
        return (x.floats(), y.floats(), x.shape[0])
    }

    /// A fresh empty temporary folder.
    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wideep-ckpt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Copies fixture `c` into a temporary folder, rewriting its single `model.safetensors` through `edit`, which
    /// receives every tensor (name, dtype, shape, raw bytes) and returns the ones to write.
    static func edited(
        _ c: Case, _ edit: ([(String, SafeTensorsDType, [Int], [UInt8])]) throws -> [(String, SafeTensorsDType, [Int], [UInt8])]
    ) throws -> String {
        let dir = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: c.directory + "/config.json", toPath: dir + "/config.json")
        let file = try SafeTensorsFile(path: c.directory + "/model.safetensors")
        let all = file.tensors.map { ($0.name, $0.dtype, $0.shape, $0.bytes()) }
        var writer = SafeTensorsWriter()
        for (name, dtype, shape, bytes) in try edit(all) {
            try writer.add(name: name, dtype: dtype, shape: shape, rawBytes: bytes)
        }
        try writer.write(to: dir + "/model.safetensors")
        return dir
    }

    /// Relative L2 error ‖a − b‖ / ‖b‖.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var num = 0.0, den = 0.0
        for i in 0..<a.count {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
        }
        return (num / max(den, 1e-300)).squareRoot()
    }

    /// A plain dense forward of one MoE layer (float64 accumulation), independent of the EP runtime: Router for
    /// the choice, SwiGLU experts, weighted sum, shared expert with its optional sigmoid gate.
    static func denseForward(_ w: MoELayerWeights, x: [Float], tokens: Int) -> [Float] {
        let c = w.config, h = c.hiddenSize, e = c.numExperts, i = c.moeIntermediateSize
        func dot(_ a: [Float], _ ao: Int, _ b: [Float], _ bo: Int, _ n: Int) -> Double {
            var s = 0.0
            for j in 0..<n { s += Double(a[ao + j]) * Double(b[bo + j]) }
            return s
        }
        func swiglu(_ w13: [Float], _ w13o: Int, _ w2: [Float], _ w2o: Int, width: Int, token t: Int) -> [Double] {
            var act = [Float](repeating: 0, count: width)
            for r in 0..<width {
                let g = dot(w13, w13o + r * h, x, t * h, h), u = dot(w13, w13o + (width + r) * h, x, t * h, h)
                act[r] = Float(g / (1 + Foundation.exp(-g)) * u)
            }
            return (0..<h).map { dot(w2, w2o + $0 * width, act, 0, width) }
        }
        var logits = [Float](repeating: 0, count: tokens * e)
        for t in 0..<tokens {
            for x1 in 0..<e { logits[t * e + x1] = Float(dot(w.routerWeight, x1 * h, x, t * h, h)) }
        }
        let (experts, weights) = Router.route(logits: logits, tokens: tokens, bias: w.correctionBias, config: c)
        var out = [Float](repeating: 0, count: tokens * h)
        for t in 0..<tokens {
            var acc = [Double](repeating: 0, count: h)
            for k in 0..<c.topK {
                let ex = Int(experts[t * c.topK + k])
                let y = swiglu(w.w13, ex * 2 * i * h, w.w2, ex * h * i, width: i, token: t)
                for j in 0..<h { acc[j] += Double(weights[t * c.topK + k]) * y[j] }
            }
            if let s13 = w.sharedW13, let s2 = w.sharedW2 {
                let y = swiglu(s13, 0, s2, 0, width: w.sharedIntermediate, token: t)
                var scale = 1.0
                if let g = w.sharedGate { scale = 1 / (1 + Foundation.exp(-dot(g, 0, x, t * h, h))) }
                for j in 0..<h { acc[j] += scale * y[j] }
            }
            for j in 0..<h { out[t * h + j] = Float(acc[j]) }
        }
        return out
    }
}
