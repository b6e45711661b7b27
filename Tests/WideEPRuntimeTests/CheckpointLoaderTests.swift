import Foundation
import Testing
import WideEPCore
import WideEPWorkload
@testable import WideEPRuntime

/// Loading one MoE layer from the transformers-made fixtures in every key layout and dtype.
@Suite struct CheckpointLoaderTests {
    typealias Fixture = CheckpointFixtures

    @Test(arguments: CheckpointFixtures.cases)
    func loaderReadsShapesOfEveryLayout(_ c: CheckpointFixtures.Case) throws {
        let w = try CheckpointLoader.loadLayer(directory: c.directory, layer: c.layer)
        #expect(w.config.hiddenSize == c.hidden)
        #expect(w.config.moeIntermediateSize == c.inter)
        #expect(w.config.numExperts == c.experts)
        #expect(w.config.topK == c.topK)
        #expect(w.w13.count == c.experts * 2 * c.inter * c.hidden)
        #expect(w.w2.count == c.experts * c.hidden * c.inter)
        try w.validate()
        let family = c.name.split(separator: "-").first!
        #expect((w.correctionBias != nil) == (family == "deepseek"))
        #expect((w.sharedW13 != nil) == (family == "deepseek" || family == "qwen2"))
        #expect((w.sharedGate != nil) == (family == "qwen2"))
        #expect(w.routerWeight.allSatisfy(\.isFinite) && w.w13.allSatisfy(\.isFinite) && w.w2.allSatisfy(\.isFinite))
        #expect(w.w13.contains { $0 != 0 } && w.w2.contains { $0 != 0 })
    }

    @Test(arguments: ["deepseek-v3", "qwen2-moe", "qwen3-moe-f16", "mixtral", "mixtral-f32"])
    func loaderConvertsEachExpertTensorExactly(_ name: String) throws {
        let c = Fixture.named(name)
        let w = try CheckpointLoader.loadLayer(directory: c.directory, layer: c.layer)
        let files = try CheckpointFiles(directory: c.directory)
        let block = name.hasPrefix("mixtral") ? "block_sparse_moe" : "mlp"
        let (g, u, d) = name.hasPrefix("mixtral") ? ("w1", "w3", "w2") : ("gate_proj", "up_proj", "down_proj")
        let h = c.hidden, i = c.inter
        for e in [0, c.experts / 2, c.experts - 1] {
            let p = "model.layers.\(c.layer).\(block).experts.\(e)."
            let gate = try files.tensor(p + g + ".weight").tensor, up = try files.tensor(p + u + ".weight").tensor
            let down = try files.tensor(p + d + ".weight").tensor
            #expect(gate.dtype == c.dtype)
            // The safetensors converter is an independent path from the loader's own per-dtype loops.
            #expect(Array(w.w13[(e * 2 * i * h)..<(e * 2 * i * h + i * h)]) == gate.floats())
            #expect(Array(w.w13[(e * 2 * i * h + i * h)..<((e + 1) * 2 * i * h)]) == up.floats())
            #expect(Array(w.w2[(e * h * i)..<((e + 1) * h * i)]) == down.floats())
        }
        let router = try files.tensor("model.layers.\(c.layer).\(block).gate.weight").tensor
        #expect(w.routerWeight == router.floats())
    }

    @Test func fp8WeightsAreDequantisedWithPartialBlockScales() throws {
        let c = Fixture.named("deepseek-v3-fp8")
        let w = try CheckpointLoader.loadLayer(directory: c.directory, layer: 0)
        let file = try SafeTensorsFile(path: c.directory + "/model.safetensors")
        let h = c.hidden, i = c.inter
        func direct(_ key: String, rows: Int, cols: Int) throws -> [Float] {
            let q = try file.tensor(named: key).bytes()
            let s = try file.tensor(named: key + "_scale_inv")
            #expect(s.shape == [(rows + 127) / 128, (cols + 127) / 128])
            let scale = s.floats()
            var out = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows {
                for j in 0..<cols {
                    out[r * cols + j] = FloatBits.e4m3ToFloat(q[r * cols + j]) * scale[(r / 128) * s.shape[1] + j / 128]
                }
            }
            return out
        }
        for e in [0, 3, 7] {
            let p = "model.layers.0.mlp.experts.\(e)."
            #expect(Array(w.w13[(e * 2 * i * h)..<(e * 2 * i * h + i * h)]) == (try direct(p + "gate_proj.weight", rows: i, cols: h)))
            #expect(Array(w.w13[(e * 2 * i * h + i * h)..<((e + 1) * 2 * i * h)]) == (try direct(p + "up_proj.weight", rows: i, cols: h)))
            let down = try direct(p + "down_proj.weight", rows: h, cols: i)
            #expect(Array(w.w2[(e * h * i)..<((e + 1) * h * i)]) == down)
            // H = 160 spans a full and a partial block: the two row blocks of W2 have different scales.
            let s = try file.tensor(named: p + "down_proj.weight_scale_inv").floats()
            #expect(s.count == 2 && s[0] != s[1])
        }
        let sharedDown = try direct("model.layers.0.mlp.shared_experts.down_proj.weight", rows: h, cols: i)
        #expect(w.sharedW2 == sharedDown)
    }

    @Test func moeLayersFollowTheCheckpoint() throws {
        #expect(try CheckpointLoader.moeLayers(directory: Fixture.named("deepseek-v3").directory) == [1])
        #expect(try CheckpointLoader.moeLayers(directory: Fixture.named("qwen2-moe").directory) == [1])
        #expect(try CheckpointLoader.moeLayers(directory: Fixture.named("mixtral").directory) == [0])
        let s = try CheckpointLoader.summary(directory: Fixture.named("deepseek-v3").directory)
        #expect(s.layout.firstDenseLayers == 1 && s.layout.numLayers == 2 && s.config.numGroups == 4)
    }

    @Test func progressComesOnlyAfterEveryTensorIsChecked() throws {
        var lines: [String] = []
        _ = try CheckpointLoader.loadLayer(directory: Fixture.named("deepseek-v3-fp8").directory, layer: 0) {
            lines.append($0)
        }
        #expect(lines.count == 1)
        #expect(lines.first?.contains("8 experts") == true && lines.first?.contains("F8_E4M3") == true)
        let c = Fixture.named("mixtral")
        let dir = try Fixture.edited(c) { $0.filter { $0.0 != "model.layers.0.block_sparse_moe.experts.7.w2.weight" } }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        lines = []
        #expect(throws: CheckpointError.self) {
            _ = try CheckpointLoader.loadLayer(directory: dir, layer: 0) { lines.append($0) }
        }
        #expect(lines.isEmpty)
    }

    /// transformers 5.x module state keeps experts fused; the loader reads that layout to the same weights.
    @Test func fusedExpertTensorsLoadLikePerExpertKeys() throws {
        let c = Fixture.named("mixtral")
        let perExpert = try CheckpointLoader.loadLayer(directory: c.directory, layer: 0)
        let h = c.hidden, i = c.inter, e = c.experts
        let dir = try Fixture.edited(c) { tensors in
            let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.0, $0) })
            var out = tensors.filter { !$0.0.contains("block_sparse_moe") }
            var gateUp: [UInt8] = [], down: [UInt8] = []
            for x in 0..<e {
                let p = "model.layers.0.block_sparse_moe.experts.\(x)."
                gateUp += byName[p + "w1.weight"]!.3 + byName[p + "w3.weight"]!.3
                down += byName[p + "w2.weight"]!.3
            }
            out.append(("model.layers.0.mlp.gate.weight", .bf16, [e, h], byName["model.layers.0.block_sparse_moe.gate.weight"]!.3))
            out.append(("model.layers.0.mlp.experts.gate_up_proj", .bf16, [e, 2 * i, h], gateUp))
            out.append(("model.layers.0.mlp.experts.down_proj", .bf16, [e, h, i], down))
            return out
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fused = try CheckpointLoader.loadLayer(directory: dir, layer: 0)
        #expect(fused.w13 == perExpert.w13)
        #expect(fused.w2 == perExpert.w2)
        #expect(fused.routerWeight == perExpert.routerWeight)
    }

    /// The loaded weights, run through a plain dense forward, reproduce transformers' block outputs.
    @Test(arguments: CheckpointFixtures.cases)
    func loadedWeightsReproduceTransformersOutputs(_ c: CheckpointFixtures.Case) throws {
        let w = try CheckpointLoader.loadLayer(directory: c.directory, layer: c.layer)
        let (x, expected, tokens) = try Fixture.io(c)
        let y = Fixture.denseForward(w, x: x, tokens: tokens)
        #expect(Fixture.relativeError(y, expected) <= 1e-5)
    }
}
