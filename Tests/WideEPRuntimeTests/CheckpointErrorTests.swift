import Foundation
import Testing
import WideEPCore
import WideEPWorkload
@testable import WideEPRuntime

/// Bad checkpoints and bad layer indices give typed errors that name the key, the file and what is valid.
@Suite struct CheckpointErrorTests {
    typealias Fixture = CheckpointFixtures

    /// The error `body` throws, as a `CheckpointError` (fails the test when it throws anything else or nothing).
    func checkpointError(_ body: () throws -> Void) -> CheckpointError? {
        do {
            try body()
            Issue.record("expected a CheckpointError, nothing was thrown")
            return nil
        } catch let e as CheckpointError {
            return e
        } catch {
            Issue.record("expected a CheckpointError, got \(error)")
            return nil
        }
    }

    @Test func denseLayerIsRefusedWithTheMoELayers() {
        let c = Fixture.named("deepseek-v3")
        let e = checkpointError { _ = try CheckpointLoader.loadLayer(directory: c.directory, layer: 0) }
        #expect(e == .denseLayer(layer: 0, reason: "first_k_dense_replace = 1", moeLayers: [1]))
        #expect(e?.description.contains("MoE layers: 1") == true)
        let q = Fixture.named("qwen2-moe")
        let eq = checkpointError { _ = try CheckpointLoader.loadLayer(directory: q.directory, layer: 0) }
        #expect(eq == .denseLayer(layer: 0, reason: "listed in mlp_only_layers", moeLayers: [1]))
    }

    @Test func layerPastTheModelIsOutOfRange() {
        let c = Fixture.named("mixtral")
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: c.directory, layer: 1) }
            == .layerOutOfRange(layer: 1, numLayers: 1))
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: c.directory, layer: -1) }
            == .layerOutOfRange(layer: -1, numLayers: 1))
    }

    @Test func missingExpertTensorNamesTheKeyAndTheFile() throws {
        let c = Fixture.named("mixtral")
        let key = "model.layers.0.block_sparse_moe.experts.5.w2.weight"
        let dir = try Fixture.edited(c) { $0.filter { $0.0 != key } }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let e = checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 0) }
        #expect(e == .missingTensor(key: key, file: dir + "/model.safetensors"))
        #expect(e?.description == "\(dir)/model.safetensors: no tensor '\(key)'")
    }

    @Test func missingFP8ScaleIsNamed() throws {
        let c = Fixture.named("deepseek-v3-fp8")
        let key = "model.layers.0.mlp.experts.2.up_proj.weight_scale_inv"
        let dir = try Fixture.edited(c) { $0.filter { $0.0 != key } }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 0) }
            == .missingTensor(key: key, file: dir + "/model.safetensors"))
    }

    @Test func wrongShapeIsReportedWithTheExpectedShape() throws {
        let c = Fixture.named("mixtral")
        let key = "model.layers.0.block_sparse_moe.experts.1.w1.weight"
        let dir = try Fixture.edited(c) { tensors in
            tensors.map { $0.0 == key ? ($0.0, $0.1, [64, 32], $0.3) : $0 }
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 0) }
            == .wrongShape(key: key, file: dir + "/model.safetensors", shape: [64, 32], expected: [32, 64]))
    }

    @Test func integerWeightsAreRejected() throws {
        let c = Fixture.named("mixtral")
        let key = "model.layers.0.block_sparse_moe.gate.weight"
        let dir = try Fixture.edited(c) { tensors in
            tensors.map { $0.0 == key ? ($0.0, SafeTensorsDType.i16, $0.2, $0.3) : $0 }
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 0) }
            == .unsupportedDType(key: key, file: dir + "/model.safetensors", dtype: "I16"))
    }

    @Test func missingShardIsNamedWithItsIndex() throws {
        let c = Fixture.named("deepseek-v3")
        let dir = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let index = try CheckpointFiles.readIndex(c.directory + "/model.safetensors.index.json")
        let probe = "model.layers.1.mlp.experts.9.down_proj.weight"
        let lost = index[probe]!
        for name in try FileManager.default.contentsOfDirectory(atPath: c.directory) where name != lost {
            try FileManager.default.copyItem(atPath: c.directory + "/" + name, toPath: dir + "/" + name)
        }
        let e = checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 1) }
        guard case let .missingTensor(key, file)? = e else {
            Issue.record("expected missingTensor, got \(String(describing: e))")
            return
        }
        #expect(file.contains(lost) && file.contains("model.safetensors.index.json"))
        #expect(index[key] == lost)
    }

    @Test func folderWithoutConfigOrWeightsIsExplained() throws {
        let dir = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir + "/nope", layer: 0) }
            == .notADirectory(path: dir + "/nope"))
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 0) }
            == .missingConfig(directory: dir))
        try FileManager.default.copyItem(
            atPath: Fixture.named("mixtral").directory + "/config.json", toPath: dir + "/config.json")
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 0) }
            == .noWeights(directory: dir))
    }

    @Test func checkpointWithoutAnyRouterIsAnUnknownLayout() throws {
        let c = Fixture.named("mixtral")
        let dir = try Fixture.edited(c) { tensors in
            tensors.map { t in
                // A dense Llama-style MLP under a name the loader does not know.
                (t.0.replacingOccurrences(of: "block_sparse_moe", with: "feed_forward"), t.1, t.2, t.3)
            }
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 0) }
            == .unknownLayout(directory: dir, layer: 0, modelType: "mixtral"))
        #expect(try CheckpointLoader.moeLayers(directory: dir).isEmpty)
    }

    @Test func sharedExpertWeightsWithoutASharedExpertInTheConfigAreRefused() throws {
        let c = Fixture.named("qwen2-moe")
        let dir = try Fixture.edited(c) { $0 }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        config["shared_expert_intermediate_size"] = 0
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        let e = checkpointError { _ = try CheckpointLoader.loadLayer(directory: dir, layer: 1) }
        guard case let .configMismatch(directory, reason)? = e else {
            Issue.record("expected configMismatch, got \(String(describing: e))")
            return
        }
        #expect(directory == dir && reason.contains("model.layers.1.mlp.shared_expert.gate_proj.weight"))
    }

    @Test func errorMessagesCompressLayerRanges() {
        #expect(CheckpointError.ranges([3, 4, 5, 6, 9, 11, 12]) == "3...6, 9, 11...12")
        #expect(CheckpointError.ranges([]) == "none")
    }
}
